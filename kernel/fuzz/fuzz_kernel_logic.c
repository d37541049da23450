/*
 * libFuzzer target over the kernel's pure logic: the JSON reader, the protocol state machine and
 * the xenstore decoder. Sanitizers catch memory and UB errors; the checks below catch broken
 * promises (effects that contradict protocol.h, console text that is not one printable line per
 * entry, canonical JSON our own reader rejects).
 *
 * Input: first byte selects the mode.
 *   0: the rest is one control/testing candidate for json_parse_object alone;
 *   1: the rest is one received xenstore message for the decoder;
 *   2: the rest is what xenstored sends the ring client (xs_client.c), see fuzz_ring();
 *   else: the rest is a sequence of events, each [kind][len lo][len hi][len bytes of value].
 *         Every event is first decided on a copy of the state that is thrown away (what a
 *         transaction ending in EAGAIN does), which must leave the real state unchanged and
 *         give the same decision again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "kstring.h"
#include "pressure.h"
#include "protocol.h"
#include "xs_client.h"
#include "xs_wire.h"

static struct proto proto;
static struct proto attempt;
static struct proto before;
static struct proto_effects fx;
static struct proto_effects attempt_fx;
static struct json_doc doc;
static struct json_doc check_doc;
static struct pressure pressure;

#define REQUIRE(cond)                                                                             \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "broken promise: %s (%s:%d)\n", #cond, __FILE__, __LINE__);           \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

static void check_json_result(const uint8_t *data, size_t size, const char *reason)
{
    if (reason) {
        REQUIRE(reason == doc.error);
        REQUIRE(doc.error_offset <= size);
        REQUIRE(doc.error_byte < 256);
        return;
    }
    REQUIRE(size <= JSON_MAX_INPUT && doc.count <= JSON_MAX_MEMBERS);
    for (size_t i = 0; i < doc.count; i++) {
        const struct json_member *m = &doc.members[i];

        /* Decoded strings are ASCII without NUL, inside the scratch budget. */
        REQUIRE(m->key >= doc.scratch && m->key + m->key_len <= doc.scratch + sizeof(doc.scratch));
        for (size_t j = 0; j < m->key_len; j++)
            REQUIRE(m->key[j] > 0 && (unsigned char)m->key[j] < 0x80);
        if (m->type == JSON_STRING)
            for (size_t j = 0; j < m->str_len; j++)
                REQUIRE(m->str[j] > 0 && (unsigned char)m->str[j] < 0x80);
        else if (m->type == JSON_NUMBER)
            /* A number keeps its own text, inside the input. */
            REQUIRE(m->str >= (const char *)data && m->str + m->str_len <= (const char *)data + size &&
                    m->str_len > 0);
        else
            REQUIRE(m->str == NULL);
    }
    (void)data;
}

static void check_effects(int kind, size_t len)
{
    bool is_shutdown = kind == 0, is_testing = kind == 1, is_timer = kind == 7;

    REQUIRE(fx.console_len < PROTO_CONSOLE_MAX && fx.console_len == strlen(fx.console));
    REQUIRE(fx.console_len == 0 || fx.console[fx.console_len - 1] == '\n');
    for (size_t i = 0; i < fx.console_len; i++) {
        unsigned char c = (unsigned char)fx.console[i];

        REQUIRE(c == '\n' || (c >= 0x20 && c < 0x7f));
    }
    REQUIRE(!fx.ack_testing || (is_testing && len > 0));
    REQUIRE(fx.shutdown_reply == PROTO_REPLY_UNTOUCHED || (is_shutdown && len > 0) ||
            (is_timer && fx.answer_if_unchanged));
    /* protocol.h step 6: never an action and a wait together; only a timer answers late. */
    REQUIRE(fx.action == PROTO_ACTION_NONE || fx.wait == PROTO_WAIT_NONE);
    REQUIRE(!fx.answer_if_unchanged || (is_timer && fx.expect_len > 0));
    REQUIRE(fx.wait_ms <= PROTO_DELAY_MAX_MS && (!fx.wait_forever || fx.wait == PROTO_WAIT_HANG));
    if (fx.shutdown_reply == PROTO_REPLY_WRITE) /* ack "" is a clear, never an empty write */
        REQUIRE(fx.shutdown_value_len > 0 && fx.shutdown_value_len <= PROTO_VALUE_MAX);
    if (fx.action == PROTO_ACTION_SUSPEND)
        REQUIRE(fx.update_state && strcmp(fx.state, "suspending") == 0);
    if (fx.update_state)
        REQUIRE(strcmp(fx.state, "ready") == 0 || strcmp(fx.state, "armed") == 0 ||
                strcmp(fx.state, "suspending") == 0);
    if (fx.update_armed && fx.armed_len) {
        /* The canonical form must be a valid message by our own reading. */
        REQUIRE(fx.armed_len <= PROTO_VALUE_MAX);
        REQUIRE(json_parse_object(fx.armed, fx.armed_len, &check_doc) == NULL);
        REQUIRE(check_doc.count >= 3 && check_doc.count <= 6);
        REQUIRE(strcmp(fx.state, "armed") == 0);
    }
    if (fx.update_last_error)
        REQUIRE(fx.last_error_len < PROTO_ERROR_MAX);
    /* Section 8: only a valid message asks for pressure, within the limit. */
    REQUIRE((fx.xs_nodes == PROTO_KEEP && fx.xs_watches == PROTO_KEEP) || is_testing);
    REQUIRE(fx.xs_nodes == PROTO_KEEP || fx.xs_nodes <= PROTO_PRESSURE_MAX);
    REQUIRE(fx.xs_watches == PROTO_KEEP || fx.xs_watches <= PROTO_PRESSURE_MAX);
    /* Section 9: likewise the balloon's percent. */
    REQUIRE(fx.balloon_percent == PROTO_KEEP || (is_testing && fx.balloon_percent <= 100));
}

/*
 * Section 8: hand what the effects asked for to the pressure machine, then take up to `budget`
 * steps, each failing with an error chosen by `seed`. The machine must only ever move towards
 * its targets, one request at a time, and report once it has nothing left to do.
 */
static void fuzz_pressure(unsigned budget, unsigned seed)
{
    struct pressure_step step;

    if ((fx.xs_nodes & fx.xs_watches) != PROTO_KEEP)
        pressure_request(&pressure, fx.xs_nodes, fx.xs_watches);
    for (unsigned i = 0; i < budget && pressure_next(&pressure, &step); i++) {
        unsigned before[2] = {pressure.held[0], pressure.held[1]};
        int err = (seed >> (i % 16)) & 1 ? (int)(seed % (XSW_EPROTO + 1)) : XSW_OK;

        pressure_done(&pressure, &step, err);
        if (step.op == PRESSURE_DONE) {
            REQUIRE(!pressure.busy);
            continue;
        }
        unsigned k = step.kind, other = 1 - k;
        /* One step moves one kind by one (a clear: to none), towards its target. */
        REQUIRE(pressure.held[other] == before[other]);
        REQUIRE(pressure.held[k] == before[k] || (step.op == PRESSURE_ADD
                                                       ? pressure.held[k] == before[k] + 1
                                                       : pressure.held[k] < before[k]));
        REQUIRE(pressure.held[k] <= PROTO_PRESSURE_MAX && pressure.busy);
        REQUIRE(pressure.error_len < PRESSURE_ERROR_MAX);
        if (pressure.held[k] == before[k])
            REQUIRE(pressure.target[k] == before[k] && pressure.error_len > 0);
    }
}

static void fuzz_events(const uint8_t *data, size_t size)
{
    proto_init(&proto);
    pressure_init(&pressure);
    while (size >= 1) {
        int kind = data[0] & 7;
        size_t len = 0;
        const char *value = NULL;

        data++;
        size--;
        if (kind <= 1) {
            if (size < 2)
                return;
            len = ((size_t)data[0] | (size_t)data[1] << 8) % (PROTO_VALUE_MAX + 1);
            data += 2;
            size -= 2;
            if (len > size)
                len = size;
            value = (const char *)data;
            data += len;
            size -= len;
        }
        if (kind <= 1) {
            /* The EAGAIN path: decide on a copy, throw it away, decide again for real. */
            memcpy(&attempt, &proto, sizeof(proto));
            memcpy(&before, &proto, sizeof(proto));
            if (kind == 0)
                proto_on_shutdown(&attempt, value, len, true, &attempt_fx);
            else
                proto_on_testing(&attempt, value, len, true, &attempt_fx);
            REQUIRE(memcmp(&before, &proto, sizeof(proto)) == 0);
        }
        switch (kind) {
        case 0:
            proto_on_shutdown(&proto, value, len, true, &fx);
            break;
        case 1:
            proto_on_testing(&proto, value, len, true, &fx);
            break;
        case 2:
            proto_on_shutdown(&proto, NULL, 0, false, &fx);
            break;
        case 3:
            proto_on_testing(&proto, NULL, 0, false, &fx);
            break;
        case 4:
        case 5:
            proto_write_refused(&proto, kind == 4 ? PROTO_KEY_SHUTDOWN : PROTO_KEY_TESTING);
            continue;
        case 6:
            proto_on_resume(&proto, size % 2 == 0, &fx);
            break;
        default:
            /* A hang or delay over; a late answer sometimes finds the request gone. */
            proto_on_timer(&proto, &fx);
            if (fx.answer_if_unchanged && size % 3 == 0) {
                check_effects(kind, len);
                proto_on_answer_lost(&proto, &fx);
            }
            break;
        }
        check_effects(kind, len);
        fuzz_pressure(kind == 6 ? 0 : 64, (unsigned)len * 2654435761u);
        if (kind == 6)
            (void)pressure_resume(&pressure, size % 2 == 0);
        if (kind <= 1) {
            REQUIRE(attempt_fx.shutdown_reply == fx.shutdown_reply);
            REQUIRE(attempt_fx.ack_testing == fx.ack_testing && attempt_fx.action == fx.action);
            REQUIRE(attempt_fx.console_len == fx.console_len &&
                    memcmp(attempt_fx.console, fx.console, fx.console_len) == 0);
            REQUIRE(attempt_fx.shutdown_value_len == fx.shutdown_value_len);
        }
        /* protocol.h: a suspend action is always followed by proto_on_resume (the hypercall
         * returns: 0 new domain, 1 cancelled, or an error, also treated as cancelled). */
        if (fx.action == PROTO_ACTION_SUSPEND) {
            proto_on_resume(&proto, len % 2 == 0, &fx);
            check_effects(6, 0);
            REQUIRE(fx.update_state && strcmp(fx.state, "suspending") != 0);
        }
    }
}

static void fuzz_xenstore(const uint8_t *data, size_t size)
{
    struct xsw_msg msg;
    size_t total = xsw_message_size(data, size);
    const char *path, *token;
    size_t plen, tlen;

    if (total == 0 || total == SIZE_MAX || total > size)
        return;
    REQUIRE(xsw_decode(data, total, &msg));
    REQUIRE(msg.len == total - XSW_HEADER_SIZE);
    (void)xsw_error_name(xsw_reply_error(&msg));
    (void)xsw_type_name(msg.type);
    if (xsw_decode_watch_event(&msg, &path, &plen, &token, &tlen)) {
        REQUIRE(plen > 0 && plen + 1 + tlen <= msg.len);
        REQUIRE(memchr(path, 0, plen) == NULL && memchr(token, 0, tlen) == NULL);
    }
}

/*
 * The ring client against whatever xenstored might send. Input: 8 bytes of initial indices,
 * then chunks [n][n bytes] that "xenstored" copies into the response ring (as far as it fits)
 * each time the client sleeps; the client alternates requests, polls and event handling.
 * Checks: no sanitizer report, indices never pass each other, queued ids are valid, and idle
 * means an empty response ring.
 */
static struct {
    struct xenstore_domain_interface ring;
    struct xsc client;
    const uint8_t *data;
    size_t size;
    uint64_t now;
    bool pending;
} r;

static void ring_deliver(void)
{
    if (r.size == 0)
        return;
    size_t n = r.data[0];
    r.data++;
    r.size--;
    if (n > r.size)
        n = r.size;
    for (size_t i = 0; i < n && r.ring.rsp_prod - r.ring.rsp_cons < XENSTORE_RING_SIZE; i++) {
        r.ring.rsp[MASK_XENSTORE_IDX(r.ring.rsp_prod)] = (char)r.data[i];
        r.ring.rsp_prod++;
    }
    r.data += n;
    r.size -= n;
    r.pending = true;
    /* xenstored consumes whatever requests there are. */
    r.ring.req_cons = r.ring.req_prod;
}

static void ring_notify(void *ctx)
{
    (void)ctx;
}

static void ring_clear(void *ctx)
{
    (void)ctx;
    r.pending = false;
}

static void ring_sleep(void *ctx, uint64_t deadline)
{
    (void)ctx;
    REQUIRE(r.ring.rsp_prod == r.ring.rsp_cons || r.client.rx_broken);
    ring_deliver();
    if (!r.pending)
        r.now = deadline;
    else
        r.now += 1000;
}

static uint64_t ring_now(void *ctx)
{
    (void)ctx;
    return r.now;
}

static void ring_log(void *ctx, const char *line)
{
    (void)ctx;
    REQUIRE(strlen(line) < XSC_LOG_MAX);
}

static const struct xsc_env ring_env = {
    .notify = ring_notify, .clear = ring_clear, .sleep = ring_sleep, .now = ring_now,
    .log = ring_log,
};

static void fuzz_ring(const uint8_t *data, size_t size)
{
    static char reply[XENSTORE_PAYLOAD_MAX + 1];
    uint32_t start[2];

    if (size < 8)
        return;
    memset(&r, 0, sizeof(r));
    memcpy(start, data, 8);
    r.ring.req_cons = r.ring.req_prod = start[0];
    r.ring.rsp_cons = r.ring.rsp_prod = start[1];
    r.data = data + 8;
    r.size = size - 8;
    r.now = 1;
    xsc_init(&r.client, &r.ring, &ring_env);
    for (unsigned step = 0; step < 64 && r.size; step++) {
        struct xsw_arg arg = {.data = "control/shutdown", .len = 16, .nul_terminated = true};
        size_t len = 0;

        if (step % 3 == 2) {
            xsc_poll(&r.client);
            int id;
            while ((id = xsc_next_event(&r.client)) >= 0)
                REQUIRE(id < XSC_MAX_WATCHES);
            REQUIRE(!xsc_idle(&r.client) ==
                    (r.ring.rsp_prod != r.ring.rsp_cons && !r.client.rx_broken));
            ring_deliver();
            continue;
        }
        int err = xsc_request(&r.client, step % 3 ? XS_WRITE : XS_READ, 0, &arg, 1, reply,
                              sizeof(reply), &len, step % 2 ? 0 : -1);
        REQUIRE(err >= 0 && (err <= XSW_EPROTO || err == XSC_ERR_TIMEOUT));
        if (err == XSW_OK)
            REQUIRE(len <= XENSTORE_PAYLOAD_MAX && reply[len] == '\0');
        REQUIRE(r.ring.rsp_prod - r.ring.rsp_cons <= XENSTORE_RING_SIZE);
        REQUIRE(r.client.tx_sent <= r.client.tx_len && r.client.rx_len <= XSW_MESSAGE_MAX);
        REQUIRE(r.client.event_count <= XSC_MAX_WATCHES);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0]) {
    case 0: {
        const char *reason = json_parse_object((const char *)data + 1, size - 1, &doc);

        check_json_result(data + 1, size - 1, reason);
        break;
    }
    case 1:
        fuzz_xenstore(data + 1, size - 1);
        break;
    case 2:
        fuzz_ring(data + 1, size - 1);
        break;
    default:
        fuzz_events(data + 1, size - 1);
    }
    return 0;
}
