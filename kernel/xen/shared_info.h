/* The shared info page: event channel bitmaps, per-vCPU time and event masks, p2m anchors. */
#ifndef XTV_XEN_SHARED_INFO_H
#define XTV_XEN_SHARED_INFO_H

#include <stdbool.h>

#include "xen/xen_headers.h"

struct shared_info *shared_info(void);
bool shared_info_mapped(void);

void shared_info_init(void);
void shared_info_suspend(void);
void shared_info_resume(void);

#endif
