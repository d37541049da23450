/*
 * xtv-xs: a xenstore client for dom0 that runs a whole test script in one process.
 *
 * Why: under QEMU TCG every process dom0 starts costs a few hundred milliseconds
 * (xenstore-read, xl), far more than the kernel takes to answer. This tool talks to xenstored's
 * socket directly, with the kernel's own wire codec (kernel/logic/xs_wire.c), waits on watches
 * instead of sleeping, and times acknowledgements with CLOCK_MONOTONIC. Static, so it runs in
 * the lab's dom0 whatever libraries are there.
 *
 * Script on stdin, one command per line; values are hex ("-" = the key is missing, "" = empty):
 *   domid NAME                         -> "domid N" | "error ENOENT"
 *   read PATH                          -> "value HEX" | "error ENAME"
 *   write PATH HEX                     -> "ok" | "error ENAME"
 *   rm PATH                            -> "ok" | "error ENAME"
 *   chmod PATH PERM...                 -> "ok" | "error ENAME"    (PERM like n0, b5)
 *   wait PATH HEX|- TIMEOUT_MS         -> "ok US" | "timeout HEX|-"
 *   lines FILE HEX_LINE COUNT TIMEOUT_MS -> "ok N" | "timeout N"  (lines equal to LINE, \r ignored)
 *   send PATH HEX TIMEOUT_MS           -> "ok US" | "timeout" | "error ENAME"  (write, wait for "")
 *   acktime PATH HEX N TIMEOUT_MS      -> "acktime US..."  (N times: write, wait until "")
 *   txrewrite PATH HEX                 -> "ok" | "error ENAME"   (rm + write in one transaction,
 *                                         retried on EAGAIN: how xenopsd asks and retries)
 *   floor PATH N TIMEOUT_MS            -> "floor US..."  (N times: write PATH, wait for our own
 *                                         watch event on it: dom0's xenstore round trip)
 *   pairs HOME N TIMEOUT_MS            -> "pairs OK FAILED MAX_US MEDIAN_US [i S T]" (N times: write
 *                                         control/shutdown=s3 and control/testing={"when":"now",
 *                                         "action":"ignore"} back to back, wait until both are "";
 *                                         the first failure's index and values (hex, - missing))
 *   race NAME N GAP_US TIMEOUT_MS BUDGET_S
 *                                      -> "race OK N TIMES" | "race FAIL i GAP_US WHY TIMES" |
 *                                         "race SLOW i TIMES" (N times: write s3, then after a
 *                                         gap swept 0..GAP_US and before the first reply, reboot;
 *                                         the domain must go away; then wait for its next
 *                                         incarnation to be ready; SLOW: BUDGET_S ran out first.
 *                                         TIMES: median and worst ms of write-to-gone and of
 *                                         gone-to-ready over the rounds done)
 *   armrace HOME N GAP_US TIMEOUT_MS   -> "armrace OK N MEDIAN_US WORST_US" |
 *                                         "armrace FAIL i GAP_US WHY" (N times: write to
 *                                         control/testing an onshutdown/ignore message with ack
 *                                         "a<i>", then after a gap swept 0..GAP_US and before
 *                                         the first reply one with ack "b<i>"; both acked and
 *                                         data/test-vm/armed must end as the second: the same
 *                                         read+ack transaction as the race, without a reboot.
 *                                         TIMES: write to armed-is-b)
 *   resume DOMID                       -> "ok" | "error ENAME"   (XS_RESUME, as after
 *                                         xc_domain_resume at the end of a checkpoint)
 * Output: one line per command.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "xs_wire.h"

#define SOCKET_PATH "/run/xenstored/socket"
#define WATCH_TOKEN "xtv-xs"

static int sock = -1;
static uint32_t next_req = 1;
static unsigned events; /* watch events seen since the last reset */
static const char *event_path; /* events on this path are counted in path_events */
static unsigned path_events;
static uint8_t msgbuf[XSW_MESSAGE_MAX];
static char valbuf[XENSTORE_PAYLOAD_MAX + 1];

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
    fprintf(stderr, "xtv-xs: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void send_all(const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(sock, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

static void recv_all(void *p, size_t n)
{
    while (n) {
        ssize_t r = read(sock, p, n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read");
        p = (char *)p + r;
        n -= (size_t)r;
    }
}

/* One whole message into msgbuf; watch events are counted. */
static void recv_message(struct xsw_msg *msg)
{
    size_t size;

    recv_all(msgbuf, XSW_HEADER_SIZE);
    size = xsw_message_size(msgbuf, XSW_HEADER_SIZE);
    if (size == SIZE_MAX) {
        errno = EPROTO;
        die("oversized message");
    }
    recv_all(msgbuf + XSW_HEADER_SIZE, size - XSW_HEADER_SIZE);
    if (!xsw_decode(msgbuf, size, msg)) {
        errno = EPROTO;
        die("decode");
    }
    if (msg->type == XS_WATCH_EVENT) {
        events++;
        if (event_path && msg->len > strlen(event_path) && !strcmp(msg->payload, event_path))
            path_events++;
    }
}

/* Send a request without waiting; returns its id (replies come in order). */
static uint32_t send_request(uint32_t type, uint32_t tx, const struct xsw_arg *args, size_t nargs)
{
    static uint8_t out[XSW_MESSAGE_MAX];
    uint32_t id = next_req++;
    size_t n = xsw_encode(out, sizeof(out), type, id, tx, args, nargs);

    if (!n) {
        errno = E2BIG;
        die("encode");
    }
    send_all(out, n);
    return id;
}

/* The reply to request id (watch events in between are counted). */
static enum xsw_error await_reply(uint32_t id, struct xsw_msg *reply)
{
    for (;;) {
        recv_message(reply);
        if (reply->type != XS_WATCH_EVENT && reply->req_id == id)
            return xsw_reply_error(reply);
    }
}

static enum xsw_error request_tx(uint32_t type, uint32_t tx, const struct xsw_arg *args,
                                 size_t nargs, struct xsw_msg *reply)
{
    return await_reply(send_request(type, tx, args, nargs), reply);
}

/* Send a request and return its reply (watch events in between are counted). */
static enum xsw_error request(uint32_t type, const struct xsw_arg *args, size_t nargs,
                              struct xsw_msg *reply)
{
    return request_tx(type, 0, args, nargs, reply);
}

static struct xsw_arg str_arg(const char *s)
{
    return (struct xsw_arg){ .data = s, .len = strlen(s), .nul_terminated = true };
}

/* Read PATH into valbuf; returns the length, or -1 if missing (err set). */
static long xs_read(const char *path, enum xsw_error *err)
{
    struct xsw_arg a = str_arg(path);
    struct xsw_msg reply;

    *err = request(XS_READ, &a, 1, &reply);
    if (*err != XSW_OK)
        return -1;
    memcpy(valbuf, reply.payload, reply.len);
    valbuf[reply.len] = '\0';
    return (long)reply.len;
}

static enum xsw_error xs_write(const char *path, const char *value, size_t len)
{
    struct xsw_arg a[2] = { str_arg(path), { .data = value, .len = len, .nul_terminated = false } };
    struct xsw_msg reply;

    return request(XS_WRITE, a, 2, &reply);
}

static enum xsw_error xs_watch(uint32_t type, const char *path)
{
    struct xsw_arg a[2] = { str_arg(path), str_arg(WATCH_TOKEN) };
    struct xsw_msg reply;

    return request(type, a, 2, &reply);
}

/* Wait for at least one message (a watch event) or the deadline. */
static void wait_event(uint64_t deadline)
{
    struct pollfd pfd = { .fd = sock, .events = POLLIN };
    uint64_t t = now_us();
    struct xsw_msg msg;

    if (t >= deadline)
        return;
    if (poll(&pfd, 1, (int)((deadline - t + 999) / 1000)) > 0)
        recv_message(&msg);
}

/*
 * Sleep for an event only if none came since `seen` (a value of `events`): an event that arrived
 * while a read awaited its reply was taken off the socket already, and the change it announced
 * may be newer than a value read before it. (Sleeping anyway lost wakeups here: the pairs test
 * saw both keys "" only at its deadline, 36 of 300 times.)
 */
static void wait_event_since(unsigned seen, uint64_t deadline)
{
    if (events == seen)
        wait_event(deadline);
}

static size_t unhex(const char *hex, char *out)
{
    size_t n = 0;

    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;

        if (sscanf(hex, "%2x", &v) != 1) {
            errno = EINVAL;
            die("hex");
        }
        out[n++] = (char)v;
    }
    return n;
}

static void print_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)s[i]);
}

/* Value of PATH equals (want, want_len), or is missing when want is NULL. */
static bool matches(const char *path, const char *want, size_t want_len, long *got)
{
    enum xsw_error err;

    *got = xs_read(path, &err);
    if (!want)
        return *got < 0 && err == XSW_ENOENT;
    return *got == (long)want_len && memcmp(valbuf, want, want_len) == 0;
}

/* With a watch on path registered: re-read on every event until it matches or time is up. */
static bool wait_watched(const char *path, const char *want, size_t want_len, unsigned timeout_ms,
                         long *got)
{
    uint64_t deadline = now_us() + (uint64_t)timeout_ms * 1000u;

    for (;;) {
        unsigned seen = events;

        if (matches(path, want, want_len, got))
            return true;
        if (now_us() >= deadline)
            return false;
        wait_event_since(seen, deadline);
    }
}

/*
 * Watches stay registered until the tool exits: a script waits on the same few keys hundreds of
 * times, and a watch costs two round trips. Stale events only cause an extra read.
 */
static char watched[64][256];
static unsigned watched_count;

static void ensure_watch(const char *path)
{
    for (unsigned i = 0; i < watched_count; i++)
        if (!strcmp(watched[i], path))
            return;
    xs_watch(XS_WATCH, path);
    if (watched_count < 64 && strlen(path) < sizeof(watched[0]))
        strcpy(watched[watched_count++], path);
}

/* After XS_UNWATCH: a later ensure_watch registers it again. */
static void forget_watch(const char *path)
{
    for (unsigned i = 0; i < watched_count; i++) {
        if (!strcmp(watched[i], path)) {
            watched_count--;
            memmove(watched[i], watched[i + 1], (watched_count - i) * sizeof(watched[0]));
            return;
        }
    }
}

static bool wait_value(const char *path, const char *want, size_t want_len, unsigned timeout_ms,
                       long *got)
{
    ensure_watch(path);
    return wait_watched(path, want, want_len, timeout_ms, got);
}

static unsigned count_lines(const char *file, const char *line, size_t len)
{
    FILE *f = fopen(file, "r");
    static char buf[8192];
    unsigned n = 0;

    if (!f)
        return 0;
    while (fgets(buf, sizeof(buf), f)) {
        size_t l = strcspn(buf, "\r\n");

        if (l == len && memcmp(buf, line, len) == 0)
            n++;
    }
    fclose(f);
    return n;
}

static void cmd_domid(const char *name)
{
    struct xsw_arg a = str_arg("/local/domain");
    struct xsw_msg reply;
    static char list[XENSTORE_PAYLOAD_MAX + 1];
    char path[128];
    size_t len;

    if (request(XS_DIRECTORY, &a, 1, &reply) != XSW_OK) {
        puts("error ENOENT");
        return;
    }
    len = reply.len;
    memcpy(list, reply.payload, len);
    for (size_t i = 0; i < len; i += strlen(list + i) + 1) {
        enum xsw_error err;

        snprintf(path, sizeof(path), "/local/domain/%s/name", list + i);
        if (xs_read(path, &err) >= 0 && strcmp(valbuf, name) == 0) {
            printf("domid %s\n", list + i);
            return;
        }
    }
    puts("error ENOENT");
}

static struct xsw_arg value_arg(const char *value, size_t len)
{
    return (struct xsw_arg){ .data = value, .len = len, .nul_terminated = false };
}

/* xenopsd's request: remove the key and write it again in one transaction. */
static enum xsw_error cmd_txrewrite(const char *path, const char *value, size_t len)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        struct xsw_arg empty = str_arg(""), commit = str_arg("T"), p = str_arg(path);
        struct xsw_arg w[2] = { str_arg(path), value_arg(value, len) };
        struct xsw_msg reply;
        enum xsw_error err = request(XS_TRANSACTION_START, &empty, 1, &reply);
        uint32_t tx;

        if (err != XSW_OK)
            return err;
        tx = (uint32_t)strtoul(reply.payload, NULL, 10);
        err = request_tx(XS_RM, tx, &p, 1, &reply);
        if (err == XSW_OK || err == XSW_ENOENT)
            err = request_tx(XS_WRITE, tx, w, 2, &reply);
        if (err != XSW_OK) {
            commit = str_arg("F");
            request_tx(XS_TRANSACTION_END, tx, &commit, 1, &reply);
            return err;
        }
        err = request_tx(XS_TRANSACTION_END, tx, &commit, 1, &reply);
        if (err != XSW_EAGAIN)
            return err;
    }
    return XSW_EAGAIN;
}

static void cmd_floor(const char *path, int rounds, unsigned timeout_ms)
{
    char value[32];

    ensure_watch(path);
    event_path = path;
    printf("floor");
    for (int i = 0; i < rounds; i++) {
        uint64_t t0, deadline;
        int n = snprintf(value, sizeof(value), "%d", i);

        path_events = 0;
        t0 = now_us();
        deadline = t0 + (uint64_t)timeout_ms * 1000u;
        if (xs_write(path, value, (size_t)n) != XSW_OK) {
            printf(" error");
            break;
        }
        while (path_events == 0 && now_us() < deadline)
            wait_event(deadline);
        if (path_events == 0) {
            printf(" timeout");
            break;
        }
        printf(" %llu", (unsigned long long)(now_us() - t0));
    }
    event_path = NULL;
    putchar('\n');
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void cmd_pairs(const char *home, int rounds, unsigned timeout_ms)
{
    static const char message[] = "{\"when\":\"now\",\"action\":\"ignore\"}";
    char shutdown[256], testing[256];
    uint64_t worst = 0;
    int ok = 0, failed = 0, first_failure = -1;
    long first_shutdown = 0, first_testing = 0;
    static char first_values[2][XENSTORE_PAYLOAD_MAX + 1];
    static uint64_t times[4096];
    size_t times_count = 0;

    snprintf(shutdown, sizeof(shutdown), "%s/control/shutdown", home);
    snprintf(testing, sizeof(testing), "%s/control/testing", home);
    ensure_watch(shutdown);
    ensure_watch(testing);
    for (int i = 0; i < rounds; i++) {
        struct xsw_arg a[2] = { str_arg(shutdown), value_arg("s3", 2) };
        struct xsw_arg b[2] = { str_arg(testing), value_arg(message, sizeof(message) - 1) };
        struct xsw_msg reply;
        uint64_t t0 = now_us(), deadline = t0 + (uint64_t)timeout_ms * 1000u;
        uint32_t first = send_request(XS_WRITE, 0, a, 2), second = send_request(XS_WRITE, 0, b, 2);
        long got_shutdown = -1, got_testing = -1;
        bool done = false;

        if (await_reply(first, &reply) != XSW_OK || await_reply(second, &reply) != XSW_OK) {
            printf("pairs error write\n");
            return;
        }
        for (;;) {
            unsigned seen = events;
            bool s_ok = matches(shutdown, "", 0, &got_shutdown);
            if (!s_ok && got_shutdown >= 0)
                memcpy(first_values[0], valbuf, (size_t)got_shutdown + 1);
            bool t_ok = matches(testing, "", 0, &got_testing);
            if (s_ok && t_ok) {
                done = true;
                break;
            }
            if (now_us() >= deadline)
                break;
            wait_event_since(seen, deadline);
        }
        uint64_t took = now_us() - t0;
        worst = took > worst ? took : worst;
        if (times_count < sizeof(times) / sizeof(times[0]))
            times[times_count++] = took;
        if (done && took <= (uint64_t)timeout_ms * 1000u) {
            ok++;
            continue;
        }
        failed++;
        if (first_failure < 0) {
            first_failure = i;
            first_shutdown = got_shutdown;
            first_testing = got_testing;
            if (got_testing >= 0)
                memcpy(first_values[1], valbuf, (size_t)got_testing + 1);
        }
        /* Let the guest catch up before the next pair, so one failure is not counted twice. */
        wait_value(shutdown, "", 0, 10000, &got_shutdown);
        wait_value(testing, "", 0, 10000, &got_testing);
    }
    qsort(times, times_count, sizeof(times[0]), compare_u64);
    printf("pairs %d %d %llu %llu", ok, failed, (unsigned long long)worst,
           (unsigned long long)(times_count ? times[times_count / 2] : 0));
    if (first_failure >= 0) {
        printf(" %d ", first_failure);
        if (first_shutdown < 0)
            putchar('-');
        else
            print_hex(first_values[0], (size_t)first_shutdown);
        putchar(' ');
        if (first_testing < 0)
            putchar('-');
        else
            print_hex(first_values[1], (size_t)first_testing);
    }
    putchar('\n');
}

/* The domid of the domain called name other than not_this, or -1. */
static long find_domid(const char *name, long not_this)
{
    struct xsw_arg a = str_arg("/local/domain");
    struct xsw_msg reply;
    static char list[XENSTORE_PAYLOAD_MAX + 1];
    char path[128];
    size_t len;

    if (request(XS_DIRECTORY, &a, 1, &reply) != XSW_OK)
        return -1;
    len = reply.len;
    memcpy(list, reply.payload, len);
    for (size_t i = 0; i < len; i += strlen(list + i) + 1) {
        enum xsw_error err;
        long d = atol(list + i);

        snprintf(path, sizeof(path), "/local/domain/%s/name", list + i);
        if (d != not_this && xs_read(path, &err) >= 0 && strcmp(valbuf, name) == 0)
            return d;
    }
    return -1;
}

/* Wait until a domain called name (other than not_this) exists and is ready. */
static long wait_incarnation(const char *name, long not_this, unsigned timeout_ms)
{
    uint64_t deadline = now_us() + (uint64_t)timeout_ms * 1000u;
    char path[128];
    long d, got;

    while ((d = find_domid(name, not_this)) < 0) {
        if (now_us() >= deadline)
            return -1;
        usleep(20000);
    }
    snprintf(path, sizeof(path), "/local/domain/%ld/data/test-vm/state", d);
    /* The lookup may end past the deadline: a negative remainder would wrap to hours. */
    uint64_t t = now_us();
    unsigned left_ms = t < deadline ? (unsigned)((deadline - t) / 1000 + 1) : 1;
    bool ready = wait_value(path, "ready", 5, left_ms, &got);
    struct xsw_arg w[2] = { str_arg(path), str_arg(WATCH_TOKEN) };
    struct xsw_msg reply;
    /* One watch per incarnation would pile up in xenstored over hundreds of reboots. */
    request(XS_UNWATCH, w, 2, &reply);
    forget_watch(path);
    if (!ready)
        return -1;
    return d;
}

/* Median and worst of the first count durations (us), as " MEDIAN_MS WORST_MS"; sorts them. */
static void print_ms_summary(uint64_t *times, size_t count)
{
    qsort(times, count, sizeof(times[0]), compare_u64);
    printf(" %llu %llu", (unsigned long long)(count ? times[count / 2] / 1000u : 0),
           (unsigned long long)(count ? times[count - 1] / 1000u : 0));
}

#define RACE_MAX_ROUNDS 4096

/* Write first, then after gap_us (busy, before its reply) second; true if both succeeded. */
static bool write_twice(const char *path, const char *first, size_t first_len,
                        const char *second, size_t second_len, unsigned gap_us)
{
    struct xsw_arg a[2] = { str_arg(path), value_arg(first, first_len) };
    struct xsw_arg b[2] = { str_arg(path), value_arg(second, second_len) };
    struct xsw_msg reply;
    uint32_t first_id = send_request(XS_WRITE, 0, a, 2);
    uint64_t until = now_us() + gap_us;

    while (now_us() < until)
        ;
    uint32_t second_id = send_request(XS_WRITE, 0, b, 2);
    bool first_ok = await_reply(first_id, &reply) == XSW_OK;
    return await_reply(second_id, &reply) == XSW_OK && first_ok;
}

/* Round i of rounds sweeps the gap evenly from 0 to gap_max_us. */
static unsigned swept_gap(unsigned gap_max_us, int i, int rounds)
{
    return rounds > 1 ? (unsigned)((uint64_t)gap_max_us * (unsigned)i / (unsigned)(rounds - 1))
                      : 0;
}

static void cmd_race(const char *name, int rounds, unsigned gap_max_us, unsigned timeout_ms,
                     unsigned budget_s)
{
    static uint64_t gone_us[RACE_MAX_ROUNDS], ready_us[RACE_MAX_ROUNDS];
    uint64_t budget_end = now_us() + (uint64_t)budget_s * 1000000u;
    int done = 0;
    long domid;
    char why[64] = "";

    if (rounds > RACE_MAX_ROUNDS)
        rounds = RACE_MAX_ROUNDS;
    /* Fires when a domain is destroyed: the wait for the old home to go away needs it. */
    ensure_watch("@releaseDomain");
    domid = wait_incarnation(name, -1, timeout_ms);

    for (int i = 0; i < rounds; i++, done++) {
        unsigned gap = swept_gap(gap_max_us, i, rounds);
        char path[128];
        struct xsw_msg reply;
        long got;

        if (now_us() >= budget_end) {
            snprintf(why, sizeof(why), "SLOW %d", i);
            break;
        }
        if (domid < 0) {
            snprintf(why, sizeof(why), "FAIL %d %u no-ready-guest", i, gap);
            break;
        }
        snprintf(path, sizeof(path), "/local/domain/%ld/control/shutdown", domid);
        uint64_t t0 = now_us();
        if (!write_twice(path, "s3", 2, "reboot", 6, gap)) {
            snprintf(why, sizeof(why), "FAIL %d %u write-refused", i, gap);
            break;
        }
        /* Rebooting: the domain and its home go away. */
        if (!wait_value(path, NULL, 0, timeout_ms, &got)) {
            snprintf(why, sizeof(why), "FAIL %d %u %s", i, gap,
                     got == 0 ? "cleared-without-rebooting" : "not-acknowledged");
            break;
        }
        uint64_t t_gone = now_us();
        struct xsw_arg w[2] = { str_arg(path), str_arg(WATCH_TOKEN) };
        request(XS_UNWATCH, w, 2, &reply);
        forget_watch(path);
        domid = wait_incarnation(name, domid, 60000);
        gone_us[i] = t_gone - t0;
        ready_us[i] = now_us() - t_gone;
    }
    if (why[0])
        printf("race %s", why);
    else
        printf("race OK %d", rounds);
    print_ms_summary(gone_us, (size_t)done);
    print_ms_summary(ready_us, (size_t)done);
    putchar('\n');
}

/* The canonical JSON the kernel publishes in data/test-vm/armed for an onshutdown/ignore. */
static int armed_message(char *buf, size_t size, char tag, int round)
{
    return snprintf(buf, size, "{\"when\":\"onshutdown\",\"ack\":\"%c%d\",\"action\":\"ignore\"}",
                    tag, round);
}

static void cmd_armrace(const char *home, int rounds, unsigned gap_max_us, unsigned timeout_ms)
{
    static uint64_t times[RACE_MAX_ROUNDS];
    char testing[128], armed[128], first_msg[96], second_msg[96];
    char why[64] = "";

    if (rounds > RACE_MAX_ROUNDS)
        rounds = RACE_MAX_ROUNDS;
    if (rounds < 0)
        rounds = 0;
    snprintf(testing, sizeof(testing), "%s/control/testing", home);
    snprintf(armed, sizeof(armed), "%s/data/test-vm/armed", home);
    ensure_watch(armed);
    for (int i = 0; i < rounds; i++) {
        unsigned gap = swept_gap(gap_max_us, i, rounds);
        int first_len = armed_message(first_msg, sizeof(first_msg), 'a', i);
        int second_len = armed_message(second_msg, sizeof(second_msg), 'b', i);
        long got;

        uint64_t t0 = now_us();
        if (!write_twice(testing, first_msg, (size_t)first_len, second_msg, (size_t)second_len,
                         gap)) {
            snprintf(why, sizeof(why), "FAIL %d %u write-refused", i, gap);
            break;
        }
        /* A second message wiped unseen leaves the first one armed for good. */
        if (!wait_watched(armed, second_msg, (size_t)second_len, timeout_ms, &got)) {
            bool first_armed = got == first_len && !memcmp(valbuf, first_msg, (size_t)got);
            enum xsw_error err;
            long left = xs_read(testing, &err);
            /* The second message still in the key: not wiped but never answered. */
            const char *what = left == second_len && !memcmp(valbuf, second_msg, (size_t)left)
                                   ? "second-left-unanswered"
                               : first_armed ? "second-wiped-unseen"
                                             : "not-armed";
            snprintf(why, sizeof(why), "FAIL %d %u %s", i, gap, what);
            break;
        }
        times[i] = now_us() - t0;
        if (!wait_value(testing, "", 0, timeout_ms, &got)) {
            snprintf(why, sizeof(why), "FAIL %d %u not-acknowledged", i, gap);
            break;
        }
    }
    if (why[0]) {
        printf("armrace %s\n", why);
        return;
    }
    qsort(times, (size_t)rounds, sizeof(times[0]), compare_u64);
    printf("armrace OK %d %llu %llu\n", rounds,
           (unsigned long long)(rounds ? times[rounds / 2] : 0),
           (unsigned long long)(rounds ? times[rounds - 1] : 0));
}

static char *next_word(char **p)
{
    char *w = strsep(p, " ");

    return w ? w : (char *)"";
}

int main(void)
{
    static char line[2 * XENSTORE_PAYLOAD_MAX + 256];
    static char value[XENSTORE_PAYLOAD_MAX + 1];
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    strncpy(addr.sun_path, SOCKET_PATH, sizeof(addr.sun_path) - 1);
    sock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("connect " SOCKET_PATH);

    while (fgets(line, sizeof(line), stdin)) {
        char *p = line, *cmd;
        enum xsw_error err;
        long got;

        line[strcspn(line, "\n")] = '\0';
        cmd = next_word(&p);
        if (!strcmp(cmd, "domid")) {
            cmd_domid(next_word(&p));
        } else if (!strcmp(cmd, "read")) {
            got = xs_read(next_word(&p), &err);
            if (got < 0) {
                printf("error %s\n", xsw_error_name(err));
            } else {
                printf("value ");
                print_hex(valbuf, (size_t)got);
                putchar('\n');
            }
        } else if (!strcmp(cmd, "write")) {
            char *path = next_word(&p);
            size_t n = unhex(next_word(&p), value);

            err = xs_write(path, value, n);
            printf(err == XSW_OK ? "ok\n" : "error %s\n", xsw_error_name(err));
        } else if (!strcmp(cmd, "rm")) {
            struct xsw_arg a = str_arg(next_word(&p));
            struct xsw_msg reply;

            err = request(XS_RM, &a, 1, &reply);
            printf(err == XSW_OK ? "ok\n" : "error %s\n", xsw_error_name(err));
        } else if (!strcmp(cmd, "chmod")) {
            struct xsw_arg a[16];
            struct xsw_msg reply;
            size_t n = 0;
            char *w;

            while (n < 16 && *(w = next_word(&p)))
                a[n++] = str_arg(w);
            err = request(XS_SET_PERMS, a, n, &reply);
            printf(err == XSW_OK ? "ok\n" : "error %s\n", xsw_error_name(err));
        } else if (!strcmp(cmd, "wait")) {
            char *path = next_word(&p), *hex = next_word(&p);
            bool missing = !strcmp(hex, "-");
            size_t n = missing ? 0 : unhex(hex, value);
            unsigned timeout = (unsigned)atoi(next_word(&p));
            uint64_t t0 = now_us();

            if (wait_value(path, missing ? NULL : value, n, timeout, &got)) {
                printf("ok %llu\n", (unsigned long long)(now_us() - t0));
            } else {
                printf("timeout ");
                if (got < 0)
                    putchar('-');
                else
                    print_hex(valbuf, (size_t)got);
                putchar('\n');
            }
        } else if (!strcmp(cmd, "send")) {
            char *path = next_word(&p);
            size_t n = unhex(next_word(&p), value);
            unsigned timeout = (unsigned)atoi(next_word(&p));
            uint64_t t0;

            ensure_watch(path);
            t0 = now_us();
            err = xs_write(path, value, n);
            if (err != XSW_OK)
                printf("error %s\n", xsw_error_name(err));
            else if (wait_watched(path, "", 0, timeout, &got))
                printf("ok %llu\n", (unsigned long long)(now_us() - t0));
            else
                puts("timeout");
        } else if (!strcmp(cmd, "lines")) {
            char *file = next_word(&p);
            size_t n = unhex(next_word(&p), value);
            unsigned count = (unsigned)atoi(next_word(&p));
            uint64_t deadline = now_us() + (uint64_t)atoi(next_word(&p)) * 1000u;
            unsigned have;

            while ((have = count_lines(file, value, n)) < count && now_us() < deadline)
                usleep(5000);
            printf(have >= count ? "ok %u\n" : "timeout %u\n", have);
        } else if (!strcmp(cmd, "acktime")) {
            char *path = next_word(&p);
            size_t n = unhex(next_word(&p), value);
            int rounds = atoi(next_word(&p));
            unsigned timeout = (unsigned)atoi(next_word(&p));

            /* The watch is set up before the clock starts: only the write and the wait count. */
            ensure_watch(path);
            printf("acktime");
            for (int i = 0; i < rounds; i++) {
                uint64_t t0 = now_us();

                if (xs_write(path, value, n) != XSW_OK ||
                    !wait_watched(path, "", 0, timeout, &got)) {
                    printf(" timeout");
                    break;
                }
                printf(" %llu", (unsigned long long)(now_us() - t0));
            }
            putchar('\n');
        } else if (!strcmp(cmd, "txrewrite")) {
            char *path = next_word(&p);
            size_t n = unhex(next_word(&p), value);

            err = cmd_txrewrite(path, value, n);
            printf(err == XSW_OK ? "ok\n" : "error %s\n", xsw_error_name(err));
        } else if (!strcmp(cmd, "floor")) {
            char *path = next_word(&p);
            int rounds = atoi(next_word(&p));

            cmd_floor(path, rounds, (unsigned)atoi(next_word(&p)));
        } else if (!strcmp(cmd, "pairs")) {
            char *home = next_word(&p);
            int rounds = atoi(next_word(&p));

            cmd_pairs(home, rounds, (unsigned)atoi(next_word(&p)));
        } else if (!strcmp(cmd, "race")) {
            char *name = next_word(&p);
            int rounds = atoi(next_word(&p));
            unsigned gap = (unsigned)atoi(next_word(&p));
            unsigned timeout_ms = (unsigned)atoi(next_word(&p));

            cmd_race(name, rounds, gap, timeout_ms, (unsigned)atoi(next_word(&p)));
        } else if (!strcmp(cmd, "armrace")) {
            char *home = next_word(&p);
            int rounds = atoi(next_word(&p));
            unsigned gap = (unsigned)atoi(next_word(&p));

            cmd_armrace(home, rounds, gap, (unsigned)atoi(next_word(&p)));
        } else if (!strcmp(cmd, "resume")) {
            struct xsw_arg a = str_arg(next_word(&p));
            struct xsw_msg reply;

            err = request(XS_RESUME, &a, 1, &reply);
            printf(err == XSW_OK ? "ok\n" : "error %s\n", xsw_error_name(err));
        } else if (*cmd) {
            printf("error unknown command %s\n", cmd);
        }
        fflush(stdout);
    }
    return 0;
}
