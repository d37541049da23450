/*
 * xtv-xs: a xenstore client for dom0 that runs a whole test script in one process.
 *
 * Why: under QEMU TCG every process dom0 starts costs a few hundred milliseconds
 * (xenstore-read, xl), far more than the kernel takes to answer. This tool talks to xenstored's
 * socket directly, with the kernel's own wire codec (kernel/common/xs_wire.c), waits on watches
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
    if (msg->type == XS_WATCH_EVENT)
        events++;
}

/* Send a request and return its reply (watch events in between are counted). */
static enum xsw_error request(uint32_t type, const struct xsw_arg *args, size_t nargs,
                              struct xsw_msg *reply)
{
    static uint8_t out[XSW_MESSAGE_MAX];
    uint32_t id = next_req++;
    size_t n = xsw_encode(out, sizeof(out), type, id, 0, args, nargs);

    if (!n) {
        errno = E2BIG;
        die("encode");
    }
    send_all(out, n);
    for (;;) {
        recv_message(reply);
        if (reply->type != XS_WATCH_EVENT && reply->req_id == id)
            return xsw_reply_error(reply);
    }
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
        if (matches(path, want, want_len, got))
            return true;
        if (now_us() >= deadline)
            return false;
        wait_event(deadline);
    }
}

/*
 * Watches stay registered until the tool exits: a script waits on the same few keys hundreds of
 * times, and a watch costs two round trips. Stale events only cause an extra read.
 */
static void ensure_watch(const char *path)
{
    static char watched[64][256];
    static unsigned count;

    for (unsigned i = 0; i < count; i++)
        if (!strcmp(watched[i], path))
            return;
    xs_watch(XS_WATCH, path);
    if (count < 64 && strlen(path) < sizeof(watched[0]))
        strcpy(watched[count++], path);
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
        } else if (*cmd) {
            printf("error unknown command %s\n", cmd);
        }
        fflush(stdout);
    }
    return 0;
}
