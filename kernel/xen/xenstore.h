/*
 * The kernel's xenstore connection: the ring client of logic/xs_client.c bound to the store
 * page and event channel of the boot mode (kernel.h). Paths without a leading '/' are relative to the
 * domain's home, /local/domain/<domid>/.
 *
 * Results are 0 or an error: enum xsw_error from logic/xs_wire.h (ENOENT, EACCES, EAGAIN, ...)
 * or XS_ERR_TIMEOUT when xenstored did not answer; xenstore_error_name() names them for logs.
 * tx is a transaction id from xenstore_read_then_start(), or XS_NO_TX.
 */
#ifndef XTV_XEN_XENSTORE_H
#define XTV_XEN_XENSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logic/xs_client.h"
#include "logic/xs_wire.h"
#include "xen/xen_headers.h"

#define XS_ERR_TIMEOUT XSC_ERR_TIMEOUT
/* The ids the main loop gives its watches; the token on the wire is the id in decimal. */
#define XS_MAX_WATCHES XSC_MAX_WATCHES
#define XS_NO_TX 0
#define XS_NO_WATCH (-1)

void xenstore_init(void);
/* new_domain: the daemon forgot our watches, the ring may hold stale bytes: start afresh. */
void xenstore_resume(bool new_domain);

evtchn_port_t xenstore_port(void);

/* Read into buf (NUL-terminated, so cap must exceed the longest value wanted). */
int xenstore_read(const char *path, char *buf, size_t cap, size_t *len);
int xenstore_write(const char *path, const char *value, size_t len);
int xenstore_write_string(const char *path, const char *value);
int xenstore_remove(const char *path);
int xenstore_watch(const char *path, unsigned int id);
int xenstore_unwatch(const char *path, unsigned int id);

/* Transactions end with XS_TRANSACTION_END; xenstored answers EAGAIN on a conflict. */
int xenstore_transaction_end(uint32_t tx, bool commit);
/*
 * A plain read of path, and a transaction started right behind it (one round trip). watch >= 0:
 * the read covers every event of that watch queued before its reply (they are taken off the
 * queue); it reads the store as it is, which a read inside a transaction may not (oxenstored
 * reads a transaction's snapshot from its start). *start_err: the transaction's result, *tx
 * its id. Returns the read's result.
 */
int xenstore_read_then_start(const char *path, char *buf, size_t cap, size_t *len, int watch,
                             uint32_t *tx, int *start_err);
/* A read in tx. It covers no watch events: oxenstored answers it from the transaction's
 * snapshot, which may be older than events queued before its reply. */
int xenstore_read_tx(uint32_t tx, const char *path, char *buf, size_t cap, size_t *len);
/*
 * In tx: write value (or remove the key, value NULL) and commit, both requests sent before
 * either reply is awaited (one round trip). *change_err gets the write's result; returns the
 * commit's (EAGAIN: nothing happened, start over). The event of the change stays queued.
 */
int xenstore_change_and_commit(uint32_t tx, const char *path, const char *value, size_t len,
                               int *change_err);

/* Clear the port's pending bit, then move whatever the ring holds into the event queue. */
void xenstore_poll_ring(void);
/* True when sleeping on the store port cannot lose anything (PROTOCOL.md 1.4). */
bool xenstore_idle(void);
/* The id of the next queued watch event, or -1. Repeated events for one id coalesce: the
 * handler reads the key anyway, so one pending event per watch is all it needs. */
int xenstore_next_event(void);
/* Queue an event for `id` as if its watch fired: makes the main loop re-read that key. */
void xenstore_queue_event(unsigned int id);
/* Requests sent since boot, and the round trips they took (pipelined ones count once). */
uint64_t xenstore_requests(void);
uint64_t xenstore_round_trips(void);

const char *xenstore_error_name(int err);

#endif
