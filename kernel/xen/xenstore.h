/*
 * A xenstore client over the shared ring: one request at a time, replies matched by request id,
 * watch events that arrive meanwhile queued for the main loop. Paths without a leading '/' are
 * relative to the domain's home, /local/domain/<domid>/.
 *
 * Results are 0 or an error: enum xsw_error from common/xs_wire.h (ENOENT, EACCES, ...) or
 * XS_ERR_TIMEOUT when xenstored did not answer; xenstore_error_name() names them for logs.
 */
#ifndef XTV_XEN_XENSTORE_H
#define XTV_XEN_XENSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/xs_wire.h"
#include "xen/xen_headers.h"

#define XS_ERR_TIMEOUT 1000
/* The ids the main loop gives its watches; the token on the wire is the id in decimal. */
#define XS_MAX_WATCHES 8

void xenstore_init(void);
void xenstore_suspend(void);
/* new_domain: the daemon forgot our watches, the ring may hold stale bytes: start afresh. */
void xenstore_resume(bool new_domain);

evtchn_port_t xenstore_port(void);

/* Read into buf (NUL-terminated, so cap must exceed the longest value wanted). */
int xenstore_read(const char *path, char *buf, size_t cap, size_t *len);
int xenstore_write(const char *path, const char *value, size_t len);
int xenstore_write_string(const char *path, const char *value);
int xenstore_remove(const char *path);
int xenstore_watch(const char *path, unsigned int id);

/* Move whatever the ring holds into the event queue without waiting. */
void xenstore_poll_ring(void);
/* The id of the next queued watch event, or -1. Repeated events for one id coalesce: the
 * handler reads the key anyway, so one pending event per watch is all it needs. */
int xenstore_next_event(void);
/* Queue an event for `id` as if its watch fired: makes the main loop re-read that key. */
void xenstore_queue_event(unsigned int id);

const char *xenstore_error_name(int err);

#endif
