/* Xen system time (nanoseconds since the host booted), as SCHEDOP_poll deadlines use it. */
#ifndef XTV_XEN_TIME_H
#define XTV_XEN_TIME_H

#include <stdint.h>

#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC 1000000000ULL

uint64_t time_now_ns(void);

#endif
