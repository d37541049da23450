/*
 * Event channels without upcalls: we sleep in SCHEDOP_poll on the ports we care about and
 * test-and-clear their pending bits ourselves. That keeps the kernel single-threaded (no
 * callback can interrupt a ring update) and still wakes within microseconds of a notification.
 */
#ifndef XTV_XEN_EVENTS_H
#define XTV_XEN_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "xen/xen_headers.h"

void evtchn_notify(evtchn_port_t port);
/* Clear the pending bit; true if it was set. */
bool evtchn_clear_pending(evtchn_port_t port);
/*
 * Sleep until one of `ports` is pending or Xen system time reaches deadline_ns (0: no deadline).
 * Returns at once if one is already pending. Pending bits are left for the caller to clear.
 */
void evtchn_poll(const evtchn_port_t *ports, unsigned int nr_ports, uint64_t deadline_ns);

#endif
