/*
 * The xenstore ring client: requests out, replies and watch events in, over the shared page
 * (struct xenstore_domain_interface, docs/misc/xenstore-ring.txt in Xen).
 *
 * Why in logic/ and not in xen/: every lab-visible xenstore bug so far was in this logic (a
 * watch event left in the ring while the kernel went to sleep, a half-sent request abandoned
 * in the ring), and it can only be tested exhaustively against a fake ring on the host
 * (kernel/tests/host, kernel/fuzz). The environment - notify xenstored, sleep until it
 * notifies us, the clock, the console - comes in through struct xsc_env.
 *
 * Rules the client keeps:
 *  - Free-running 32-bit indices, masked on access; no copy of them is kept, so whatever a
 *    restore leaves in the page is right. Indices further apart than the ring is big are
 *    refused (never trusted for copying).
 *  - A request is either wholly in the request ring or still being written: if a send times
 *    out halfway, the rest goes out before any later request, so the stream stays whole.
 *  - Watch events are queued, one entry per watch (repeated events coalesce: the handler reads
 *    the key anyway). A read that names its watch (consume_watch) takes that watch's entry off
 *    the queue when its reply arrives: every event that came before the reply is covered by
 *    the value read.
 *  - Idle (safe to sleep) only when no event is queued and the response ring is empty; the
 *    caller clears the port's pending bit before draining (xsc_poll), so a notification after
 *    the drain wakes the sleep at once.
 *  - A connection xenstored declared broken (the page's `error` field, or `connection` not
 *    CONNECTED) is said on the console once per new value.
 */
#ifndef XTV_XS_CLIENT_H
#define XTV_XS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xs_wire.h"

/* Besides enum xsw_error: no reply before the deadline. */
#define XSC_ERR_TIMEOUT 1000
/* Watch ids the client can queue; the token on the wire is the id in decimal. */
#define XSC_MAX_WATCHES 8
#define XSC_REPLY_TIMEOUT_NS (10ULL * 1000000000ULL)
/* Line length the client hands to env->log. */
#define XSC_LOG_MAX 160

struct xsc_env {
    void *ctx;
    /* Send a notification on the store event channel. */
    void (*notify)(void *ctx);
    /* Clear the store port's pending bit (before looking at the ring). */
    void (*clear)(void *ctx);
    /* Sleep until the store port is pending or `deadline_ns` passed. */
    void (*sleep)(void *ctx, uint64_t deadline_ns);
    uint64_t (*now)(void *ctx);
    /* One console line, without the newline. */
    void (*log)(void *ctx, const char *line);
};

struct xsc {
    struct xenstore_domain_interface *ring;
    const struct xsc_env *env;
    uint32_t next_req_id;

    /* The message being received, possibly incomplete. */
    char rx[XSW_MESSAGE_MAX];
    size_t rx_len;
    bool rx_broken;

    /* The request being sent: bytes [tx_sent, tx_len) are not in the ring yet. */
    char tx[XSW_MESSAGE_MAX];
    size_t tx_len;
    size_t tx_sent;

    unsigned char events[XSC_MAX_WATCHES];
    unsigned int event_count;

    uint32_t reported_error;      /* the `error` value last said on the console */
    uint32_t reported_connection; /* the `connection` value last said */
    bool reported_req_corrupt;
    bool reported_rsp_corrupt;

    uint64_t requests;    /* sent since init */
    uint64_t round_trips; /* waits for xenstored: requests sent together count once */
    unsigned outstanding; /* sent, reply not yet taken */
};

/* Boot: attach to ring, nothing queued, request ids from 1. */
void xsc_init(struct xsc *c, struct xenstore_domain_interface *ring, const struct xsc_env *env);
/* The ring moved (a cancelled suspend remaps it): keep everything else. */
void xsc_attach(struct xsc *c, struct xenstore_domain_interface *ring);
/*
 * A new domain: the daemon forgot our watches and requests, the ring may hold stale bytes.
 * Drop what is queued or half-sent, skip the stale replies (as Linux does) and notify.
 */
void xsc_reset(struct xsc *c, struct xenstore_domain_interface *ring);

/* Clear the port's pending bit, then move whatever the ring holds into the event queue and
 * finish a half-sent request, without waiting. */
void xsc_poll(struct xsc *c);
/* True when sleeping cannot lose anything: no event queued, the response ring empty (or
 * unreadable: a broken stream, corrupt indices). */
bool xsc_idle(const struct xsc *c);
/* The id of the next queued watch event, or -1. */
int xsc_next_event(struct xsc *c);
/* Queue an event for `id` as if its watch fired. */
void xsc_queue_event(struct xsc *c, unsigned int id);

/*
 * Send one request (type, tx_id, args) without waiting for its reply; *req_id names it for
 * xsc_finish. Requests are answered in order, so several may be sent before finishing them
 * in the same order. Returns 0, XSW_E2BIG (does not encode), XSW_EIO (corrupt request ring)
 * or XSC_ERR_TIMEOUT (the previous request or this one did not fit in time; what was written
 * of it stays and goes out first next time).
 */
int xsc_send(struct xsc *c, uint32_t type, uint32_t tx_id, const struct xsw_arg *args,
             size_t nargs, uint32_t *req_id, uint64_t deadline_ns);
/*
 * Wait for the reply to req_id. Its payload goes into reply (NUL-terminated, cut to cap - 1)
 * when reply is not NULL. consume_watch >= 0: drop that watch's queued event when the reply
 * arrives. Returns 0, the xenstore error of the reply, or XSC_ERR_TIMEOUT.
 */
int xsc_finish(struct xsc *c, uint32_t req_id, char *reply, size_t cap, size_t *reply_len,
               int consume_watch, uint64_t deadline_ns);
/* xsc_send then xsc_finish with the default timeout. */
int xsc_request(struct xsc *c, uint32_t type, uint32_t tx_id, const struct xsw_arg *args,
                size_t nargs, char *reply, size_t cap, size_t *reply_len, int consume_watch);

/* "ETIMEDOUT" or the xenstore error name. */
const char *xsc_error_name(int err);

#endif
