/*
 * xenstore pressure (PROTOCOL.md section 8, version 1.2) as a pure state machine: how many
 * nodes and watches the guest is asked to hold, how many it holds, and the next xenstore request
 * that brings the one closer to the other.
 *
 * Why apart from protocol.c: the protocol decides on a copy of its state that a failed
 * transaction throws away, while this work runs outside any event, one request at a time, from
 * the main loop. The Xen side asks pressure_next() for a step, makes the request, and hands its
 * result to pressure_done(); it takes a few steps per pass of its loop, so watch events (and so
 * control/shutdown) are never waiting behind more than a few requests.
 *
 * Nodes are data/test-vm/pressure/n/<i/100>/<i>, watches are on data/test-vm/pressure/w/<i> (a
 * path nobody writes), i from 0: the guest holds the first `held` of each. The first request that
 * fails stops the work on that kind where it is (its target becomes what it holds) and is kept
 * as the error until the next request.
 */
#ifndef XTV_PRESSURE_H
#define XTV_PRESSURE_H

#include <stdbool.h>
#include <stddef.h>

#define PRESSURE_ERROR_MAX 40

enum pressure_kind { PRESSURE_NODES, PRESSURE_WATCHES };

enum pressure_op {
    PRESSURE_ADD,    /* write node `index` / watch `index` */
    PRESSURE_REMOVE, /* remove node `index` / unwatch `index` */
    PRESSURE_CLEAR,  /* remove the nodes' directory (target 0: one request, not one per node) */
    PRESSURE_DONE,   /* publish the status as done */
};

struct pressure_step {
    enum pressure_op op;
    enum pressure_kind kind;
    unsigned index;
};

/* Re-initialised at boot; pressure_resume() says what a new domain changes. */
struct pressure {
    unsigned target[2]; /* by enum pressure_kind */
    unsigned held[2];
    bool active;        /* asked at least once: the status keys exist */
    bool busy;          /* steps (at least the DONE step) are pending */
    char error[PRESSURE_ERROR_MAX];
    size_t error_len;
};

void pressure_init(struct pressure *p);
/* A message asked for these counts; PROTO_KEEP (protocol.h) leaves a kind as it is. */
void pressure_request(struct pressure *p, unsigned nodes, unsigned watches);
/* The next step, or false when there is nothing to do. */
bool pressure_next(const struct pressure *p, struct pressure_step *s);
/* The result of the step's request: 0 or an error of xs_wire.h / xs_client.h. */
void pressure_done(struct pressure *p, const struct pressure_step *s, int err);
/*
 * Back from a suspend. A new domain's xenstored has none of our watches, and the nodes went
 * with the old domain's home: held is 0 again and the work runs again up to the same targets.
 * Returns true when that work (and its status) starts again.
 */
bool pressure_resume(struct pressure *p, bool new_domain);

#endif
