/*
 * Host tests of the xenstore ring client (logic/xs_client.c) against a fake xenstored on an
 * in-memory ring page. Only the daemon is fake; the client code is the kernel's. Prints
 * "ok <case>" or "FAIL <case>: <check>" per case, exits 1 if any case failed.
 *
 * The fake daemon runs whenever the client sleeps (the only moment real xenstored could make
 * progress that the client has to wait for): it reads whole requests from the request ring,
 * asks the case's handler what to answer, and copies its output into the response ring as far
 * as it fits, notifying once per step. Every sleep checks the rule the kernel's main loop
 * depends on: the client never sleeps while the response ring holds bytes.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kstring.h"
#include "xs_client.h"
#include "xs_wire.h"

#include "check.h"

/* --- the fake daemon ------------------------------------------------------------------------ */

struct request {
    uint32_t type, req_id, tx_id;
    char payload[XENSTORE_PAYLOAD_MAX + 1];
    size_t len;
};

static struct fake {
    struct xenstore_domain_interface ring;
    struct xsc client;
    uint64_t now;
    bool pending;       /* the guest's store port */
    bool stalled;       /* the daemon reads no requests */
    unsigned notifies;  /* from the client */
    unsigned wakeups;   /* daemon -> client notifications */
    unsigned sleeps;
    bool slept_with_data;
    bool slept_with_events;
    bool check_events_on_sleep;
    /* daemon side */
    char rx[XSW_MESSAGE_MAX];
    size_t rx_len;
    char out[64 * 1024];
    size_t out_len;
    struct request seen[64];
    unsigned seen_count;
    bool garbage; /* a request arrived the daemon could not frame */
    void (*handler)(const struct request *rq);
    char log[8192];
    size_t log_len;
} f;

static void emit(uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload, size_t len)
{
    struct xsd_sockmsg h = {.type = type, .req_id = req_id, .tx_id = tx_id, .len = (uint32_t)len};

    memcpy(f.out + f.out_len, &h, sizeof(h));
    memcpy(f.out + f.out_len + sizeof(h), payload, len);
    f.out_len += sizeof(h) + len;
}

static void emit_event(const char *path, const char *token)
{
    char p[512];
    size_t a = strlen(path) + 1, b = strlen(token) + 1;

    memcpy(p, path, a);
    memcpy(p + a, token, b);
    emit(XS_WATCH_EVENT, 0, 0, p, a + b);
}

static void emit_ok(const struct request *rq)
{
    emit(rq->type, rq->req_id, rq->tx_id, "OK", 3);
}

/* Move the daemon's output into the response ring as far as it fits. */
static void daemon_write(void)
{
    struct xenstore_domain_interface *r = &f.ring;
    size_t moved = 0;

    while (moved < f.out_len && r->rsp_prod - r->rsp_cons < XENSTORE_RING_SIZE) {
        r->rsp[MASK_XENSTORE_IDX(r->rsp_prod)] = f.out[moved++];
        r->rsp_prod++;
    }
    memmove(f.out, f.out + moved, f.out_len - moved);
    f.out_len -= moved;
    if (moved) {
        f.pending = true;
        f.wakeups++;
    }
}

static void daemon_read(void)
{
    struct xenstore_domain_interface *r = &f.ring;

    while (!f.stalled && r->req_cons != r->req_prod && !f.garbage) {
        f.rx[f.rx_len++] = r->req[MASK_XENSTORE_IDX(r->req_cons)];
        r->req_cons++;
        size_t size = xsw_message_size(f.rx, f.rx_len);
        if (size == SIZE_MAX) {
            f.garbage = true;
            break;
        }
        if (size && f.rx_len == size) {
            struct xsw_msg msg;
            struct request *rq = &f.seen[f.seen_count < 64 ? f.seen_count : 63];

            if (!xsw_decode(f.rx, size, &msg)) {
                f.garbage = true;
                break;
            }
            rq->type = msg.type;
            rq->req_id = msg.req_id;
            rq->tx_id = msg.tx_id;
            rq->len = msg.len;
            memcpy(rq->payload, msg.payload, msg.len);
            rq->payload[msg.len] = '\0';
            if (f.seen_count < 64)
                f.seen_count++;
            f.rx_len = 0;
            if (f.handler)
                f.handler(rq);
        }
    }
}

static void daemon_step(void)
{
    daemon_read();
    daemon_write();
}

/* --- the client's environment --------------------------------------------------------------- */

static void env_notify(void *ctx)
{
    (void)ctx;
    f.notifies++;
}

static void env_clear(void *ctx)
{
    (void)ctx;
    f.pending = false;
}

static void env_sleep(void *ctx, uint64_t deadline)
{
    (void)ctx;
    f.sleeps++;
    if (f.ring.rsp_prod != f.ring.rsp_cons)
        f.slept_with_data = true;
    if (f.check_events_on_sleep && f.client.event_count)
        f.slept_with_events = true;
    if (!f.pending)
        daemon_step();
    if (!f.pending)
        f.now = deadline; /* nothing will happen: time runs out */
    else
        f.now += 1000;
}

static uint64_t env_now(void *ctx)
{
    (void)ctx;
    return f.now;
}

static void env_log(void *ctx, const char *line)
{
    (void)ctx;
    size_t n = strlen(line);

    if (f.log_len + n + 2 < sizeof(f.log)) {
        memcpy(f.log + f.log_len, line, n);
        f.log_len += n;
        f.log[f.log_len++] = '\n';
        f.log[f.log_len] = '\0';
    }
}

static const struct xsc_env env = {
    .notify = env_notify, .clear = env_clear, .sleep = env_sleep, .now = env_now, .log = env_log,
};

static void setup(uint32_t req_start, uint32_t rsp_start, void (*handler)(const struct request *))
{
    memset(&f, 0, sizeof(f));
    f.ring.req_cons = f.ring.req_prod = req_start;
    f.ring.rsp_cons = f.ring.rsp_prod = rsp_start;
    f.now = 1000000;
    f.handler = handler;
    xsc_init(&f.client, &f.ring, &env);
}

static struct xsw_arg arg(const char *s)
{
    return (struct xsw_arg){.data = s, .len = strlen(s), .nul_terminated = true};
}

static int read_key(const char *path, char *buf, size_t cap, size_t *len, int watch)
{
    struct xsw_arg a = arg(path);

    return xsc_request(&f.client, XS_READ, 0, &a, 1, buf, cap, len, watch);
}

static int write_key(const char *path, const char *value, size_t len)
{
    struct xsw_arg a[2] = {arg(path), {.data = value, .len = len, .nul_terminated = false}};

    return xsc_request(&f.client, XS_WRITE, 0, a, 2, NULL, 0, NULL, -1);
}

/* --- handlers ------------------------------------------------------------------------------- */

/* A read of "size/N" answers N bytes of a pattern that depends on the request id. */
static void answer_sized(const struct request *rq)
{
    static char value[XENSTORE_PAYLOAD_MAX];

    if (rq->type == XS_READ && strncmp(rq->payload, "size/", 5) == 0) {
        size_t n = (size_t)atoi(rq->payload + 5);
        for (size_t i = 0; i < n; i++)
            value[i] = (char)('a' + (rq->req_id + i) % 26);
        emit(XS_READ, rq->req_id, rq->tx_id, value, n);
    } else {
        emit_ok(rq);
    }
}

static bool pattern_ok(const char *buf, size_t n, uint32_t req_id)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (char)('a' + (req_id + i) % 26))
            return false;
    return true;
}

/* --- cases ---------------------------------------------------------------------------------- */

static void sized_reads(unsigned rounds)
{
    static char buf[XENSTORE_PAYLOAD_MAX + 1];
    static const size_t sizes[] = {0, 1, 15, 16, 17, 500, 1007, 1008, 1009, 1024, 2048, 4096};

    for (unsigned i = 0; i < rounds; i++) {
        char path[32];
        size_t want = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))], len = 99999;
        uint32_t id = f.client.next_req_id;

        snprintf(path, sizeof(path), "size/%zu", want);
        CHECK(read_key(path, buf, sizeof(buf), &len, -1) == XSW_OK);
        CHECK(len == want && pattern_ok(buf, len, id));
    }
}

CASE(ring_indices_wrap_around)
{
    /* Free-running indices close to 2^32: both rings wrap during the run. */
    setup(0xfffffe00u, 0xffffff00u, answer_sized);
    sized_reads(60);
    CHECK(f.ring.rsp_prod < 0x10000 && f.ring.req_prod < 0x10000); /* they did wrap */
    CHECK(!f.garbage && !f.slept_with_data);
    CHECK(f.log_len == 0);
}

CASE(messages_split_over_the_ring_end)
{
    /* Every reply and request starts a few bytes before the end of the page. */
    for (uint32_t start = 1000; start < 1024; start += 3) {
        setup(start, start, answer_sized);
        sized_reads(12);
        CHECK(!f.garbage && !f.slept_with_data);
    }
}

static void answer_interleaved(const struct request *rq)
{
    /* A stale reply and events before and after the real one. */
    emit_event("control/shutdown", "0");
    emit(XS_READ, rq->req_id + 1000, 0, "stale", 5);
    emit_event("control/testing", "1");
    emit_event("control/shutdown", "0");
    emit(XS_READ, rq->req_id, rq->tx_id, "value", 5);
    emit_event("control/testing", "1");
}

CASE(replies_and_events_interleaved)
{
    char buf[64];
    size_t len = 0;

    setup(0, 0, answer_interleaved);
    CHECK(read_key("x", buf, sizeof(buf), &len, -1) == XSW_OK);
    CHECK(len == 5 && memcmp(buf, "value", 5) == 0);
    /* The event after the reply is still in the ring: not idle. */
    CHECK(!xsc_idle(&f.client));
    xsc_poll(&f.client);
    CHECK(xsc_next_event(&f.client) == 0);
    CHECK(xsc_next_event(&f.client) == 1);
    CHECK(xsc_next_event(&f.client) == -1);
    CHECK(xsc_idle(&f.client));
    CHECK(strstr(f.log, "dropping a reply nobody waits for, id 1001") != NULL);
}

static void answer_reply_then_event(const struct request *rq)
{
    emit(rq->type, rq->req_id, rq->tx_id, "OK", 3);
    if (rq->type == XS_WRITE)
        emit_event("control/shutdown", "0");
}

CASE(reply_and_event_in_one_notification)
{
    setup(0, 0, answer_reply_then_event);
    CHECK(write_key("control/shutdown", "", 0) == XSW_OK);
    /* One notification brought both; the event must not wait for another one. */
    CHECK(f.wakeups == 1);
    CHECK(!xsc_idle(&f.client));
    xsc_poll(&f.client);
    CHECK(xsc_next_event(&f.client) == 0);
    CHECK(xsc_idle(&f.client));
}

/*
 * The kernel's main loop in miniature: handle events until idle, then sleep. Each handled
 * event causes a write whose reply comes with the next event in one notification (C xenstored
 * fires the writer's own watch before it answers, here the other way round): the loop must
 * get through all of them without a further notification, and never sleep with work queued.
 */
static unsigned events_left;
static void answer_with_next_event(const struct request *rq)
{
    emit(rq->type, rq->req_id, rq->tx_id, "OK", 3);
    if (rq->type == XS_WRITE && events_left) {
        events_left--;
        emit_event("control/shutdown", "0");
    }
}

CASE(main_loop_never_sleeps_with_an_event_behind_a_reply)
{
    unsigned handled = 0;

    setup(0, 0, answer_with_next_event);
    events_left = 300;
    f.check_events_on_sleep = true;
    xsc_queue_event(&f.client, 0);
    for (unsigned spins = 0; spins < 10000; spins++) {
        xsc_poll(&f.client);
        if (xsc_next_event(&f.client) >= 0) {
            handled++;
            CHECK(write_key("control/shutdown", "", 0) == XSW_OK);
            continue;
        }
        if (!xsc_idle(&f.client))
            continue;
        /* The only sleep allowed: nothing left. */
        break;
    }
    CHECK(handled == 301);
    CHECK(!f.slept_with_data && !f.slept_with_events);
}

static void answer_read_event_then_reply_then_event(const struct request *rq)
{
    emit_event("control/shutdown", "0");
    emit(rq->type, rq->req_id, rq->tx_id, "poweroff", 8);
    emit_event("control/testing", "1");
}

CASE(read_covers_events_queued_before_its_reply)
{
    char buf[16];
    size_t len;

    setup(0, 0, answer_read_event_then_reply_then_event);
    xsc_queue_event(&f.client, 0);
    CHECK(read_key("control/shutdown", buf, sizeof(buf), &len, 0) == XSW_OK);
    /* Watch 0's events before the reply are covered by the value read; watch 1's stays. */
    xsc_poll(&f.client);
    CHECK(xsc_next_event(&f.client) == 1);
    CHECK(xsc_next_event(&f.client) == -1);
}

CASE(events_coalesce_per_watch_and_bad_tokens_are_said)
{
    setup(0, 0, NULL);
    for (int i = 0; i < 5; i++) {
        emit_event("a", "3");
        emit_event("b", "1");
    }
    emit_event("c", "x");
    emit_event("d", "99");
    daemon_write();
    xsc_poll(&f.client);
    CHECK(xsc_next_event(&f.client) == 3);
    CHECK(xsc_next_event(&f.client) == 1);
    CHECK(xsc_next_event(&f.client) == -1);
    CHECK(strstr(f.log, "ignoring watch event with an unknown token") != NULL);
}

CASE(pipelined_requests_are_answered_in_order)
{
    uint32_t a, b;
    char buf[16];
    size_t len = 0;

    setup(0x3f0, 0x3f0, answer_sized);
    struct xsw_arg first = arg("size/7"), second = arg("size/9");
    CHECK(xsc_send(&f.client, XS_READ, 0, &first, 1, &a, f.now + 1000000) == 0);
    CHECK(xsc_send(&f.client, XS_READ, 0, &second, 1, &b, f.now + 1000000) == 0);
    CHECK(xsc_finish(&f.client, a, buf, sizeof(buf), &len, -1, f.now + 1000000) == 0);
    CHECK(len == 7 && pattern_ok(buf, len, a));
    CHECK(xsc_finish(&f.client, b, buf, sizeof(buf), &len, -1, f.now + 1000000) == 0);
    CHECK(len == 9 && pattern_ok(buf, len, b));
    CHECK(f.log_len == 0);
}

CASE(error_replies_are_returned)
{
    char buf[16];
    size_t len;

    setup(0, 0, NULL);
    f.handler = NULL;
    /* Answer by hand: ENOENT for the read, EAGAIN for the next one. */
    struct xsw_arg a = arg("k");
    uint32_t id;
    CHECK(xsc_send(&f.client, XS_READ, 5, &a, 1, &id, f.now + 1000) == 0);
    emit(XS_ERROR, id, 5, "ENOENT", 7);
    daemon_write();
    CHECK(xsc_finish(&f.client, id, buf, sizeof(buf), &len, -1, f.now + 1000) == XSW_ENOENT);
    CHECK(xsc_send(&f.client, XS_TRANSACTION_END, 5, &a, 1, &id, f.now + 1000) == 0);
    emit(XS_ERROR, id, 5, "EAGAIN", 7);
    daemon_write();
    CHECK(xsc_finish(&f.client, id, NULL, 0, NULL, -1, f.now + 1000) == XSW_EAGAIN);
}

static void answer_ok(const struct request *rq)
{
    emit_ok(rq);
}

#define HALF_SENT_SIZE 900

/*
 * A 900-byte request of `fill` times out half sent (the daemon is stuck with 700 bytes of the
 * ring in use, so it cannot all go out); then the daemon recovers, skipping the 700 bytes.
 */
static void time_out_halfway_then_recover(char fill)
{
    static char big[HALF_SENT_SIZE];

    setup(0, 0, answer_ok);
    f.stalled = true;
    f.ring.req_prod = 700;
    memset(big, fill, sizeof(big));
    CHECK(write_key("big", big, sizeof(big)) == XSC_ERR_TIMEOUT);
    f.stalled = false;
    f.ring.req_cons = 700;
}

CASE(a_send_that_times_out_halfway_is_finished_first)
{
    time_out_halfway_then_recover('v');
    CHECK(f.client.tx_sent > 0 && f.client.tx_sent < f.client.tx_len);
    /* The kernel sends another request. */
    CHECK(write_key("next", "1", 1) == XSW_OK);
    /* The daemon saw two whole requests: the old one, then the new one. */
    CHECK(!f.garbage);
    CHECK(f.seen_count == 2);
    CHECK(f.seen[0].type == XS_WRITE && f.seen[0].len == 4 + HALF_SENT_SIZE);
    CHECK(f.seen[1].type == XS_WRITE && strcmp(f.seen[1].payload, "next") == 0);
    CHECK(strstr(f.log, "dropping a reply nobody waits for, id 1") != NULL);
}

CASE(a_half_sent_request_goes_out_from_the_main_loop)
{
    time_out_halfway_then_recover('w');
    /* No new request: the main loop's poll finishes the old one. */
    xsc_poll(&f.client);
    CHECK(f.client.tx_sent == f.client.tx_len);
    daemon_step();
    CHECK(!f.garbage && f.seen_count == 1 && f.seen[0].len == 4 + HALF_SENT_SIZE);
}

static void answer_nothing_broken(const struct request *rq)
{
    (void)rq;
    f.ring.error = XENSTORE_ERROR_RINGIDX;
}

CASE(a_broken_connection_is_said_once)
{
    char buf[8];
    size_t len;

    setup(0, 0, answer_nothing_broken);
    CHECK(read_key("k", buf, sizeof(buf), &len, -1) == XSC_ERR_TIMEOUT);
    CHECK(strstr(f.log, "xenstore: connection broken: xenstored reports error 2 (invalid ring "
                        "index)") != NULL);
    size_t once = f.log_len;
    CHECK(read_key("k", buf, sizeof(buf), &len, -1) == XSC_ERR_TIMEOUT);
    xsc_poll(&f.client);
    CHECK(f.log_len == once);
    f.ring.connection = XENSTORE_RECONNECT;
    xsc_poll(&f.client);
    CHECK(strstr(f.log, "xenstore: connection state 1 (not connected)") != NULL);
}

CASE(corrupt_indices_are_never_used)
{
    char buf[8];
    size_t len;

    setup(0, 0, answer_ok);
    f.ring.req_prod = 5000; /* 5000 bytes "in flight" in a 1024-byte ring */
    CHECK(write_key("k", "v", 1) == XSW_EIO);
    CHECK(strstr(f.log, "request ring indices corrupt") != NULL);
    setup(0, 0, NULL);
    f.ring.rsp_prod = 4096;
    CHECK(read_key("k", buf, sizeof(buf), &len, -1) == XSC_ERR_TIMEOUT);
    CHECK(f.ring.rsp_cons == 0);
    CHECK(strstr(f.log, "response ring indices corrupt") != NULL);
}

CASE(an_impossible_length_breaks_the_stream_once)
{
    struct xsd_sockmsg h = {.type = XS_READ, .req_id = 1, .len = XENSTORE_PAYLOAD_MAX + 1};
    char buf[8];
    size_t len;

    setup(0, 0, NULL);
    memcpy(f.out, &h, sizeof(h));
    f.out_len = sizeof(h);
    daemon_write();
    CHECK(read_key("k", buf, sizeof(buf), &len, -1) == XSC_ERR_TIMEOUT);
    CHECK(strstr(f.log, "reply stream broken (length beyond 4096)") != NULL);
}

CASE(reset_skips_stale_replies_and_forgets_events)
{
    setup(100, 200, NULL);
    emit_event("a", "1");
    emit(XS_READ, 77, 0, "old", 3);
    daemon_write();
    xsc_queue_event(&f.client, 2);
    xsc_reset(&f.client, &f.ring);
    CHECK(f.ring.rsp_cons == f.ring.rsp_prod);
    CHECK(xsc_next_event(&f.client) == -1 && xsc_idle(&f.client));
    CHECK(f.notifies > 0);
}

int main(void)
{
    run("ring_indices_wrap_around", ring_indices_wrap_around);
    run("messages_split_over_the_ring_end", messages_split_over_the_ring_end);
    run("replies_and_events_interleaved", replies_and_events_interleaved);
    run("reply_and_event_in_one_notification", reply_and_event_in_one_notification);
    run("main_loop_never_sleeps_with_an_event_behind_a_reply",
        main_loop_never_sleeps_with_an_event_behind_a_reply);
    run("read_covers_events_queued_before_its_reply", read_covers_events_queued_before_its_reply);
    run("events_coalesce_per_watch_and_bad_tokens_are_said",
        events_coalesce_per_watch_and_bad_tokens_are_said);
    run("pipelined_requests_are_answered_in_order", pipelined_requests_are_answered_in_order);
    run("error_replies_are_returned", error_replies_are_returned);
    run("a_send_that_times_out_halfway_is_finished_first",
        a_send_that_times_out_halfway_is_finished_first);
    run("a_half_sent_request_goes_out_from_the_main_loop",
        a_half_sent_request_goes_out_from_the_main_loop);
    run("a_broken_connection_is_said_once", a_broken_connection_is_said_once);
    run("corrupt_indices_are_never_used", corrupt_indices_are_never_used);
    run("an_impossible_length_breaks_the_stream_once",
        an_impossible_length_breaks_the_stream_once);
    run("reset_skips_stale_replies_and_forgets_events",
        reset_skips_stale_replies_and_forgets_events);
    return failures ? 1 : 0;
}
