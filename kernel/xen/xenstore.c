/*
 * The store ring and port come from the boot mode (kernel.h); everything about the ring itself is in
 * logic/xs_client.c. This file supplies its environment (event channel, Xen time, console)
 * and the request vocabulary the kernel uses.
 */
#include "xen/xenstore.h"

#include "logic/kstring.h"
#include "kernel.h"
#include "xen/console.h"
#include "xen/events.h"
#include "xen/time.h"

static struct xsc client;
static evtchn_port_t port;

static void env_notify(void *ctx)
{
    (void)ctx;
    evtchn_notify(port);
}

static void env_clear(void *ctx)
{
    (void)ctx;
    evtchn_clear_pending(port);
}

static void env_sleep(void *ctx, uint64_t deadline_ns)
{
    (void)ctx;
    evtchn_poll(&port, 1, deadline_ns);
}

static uint64_t env_now(void *ctx)
{
    (void)ctx;
    return time_now_ns();
}

static void env_log(void *ctx, const char *line)
{
    (void)ctx;
    console_printf("%s", line);
}

static const struct xsc_env env = {
    .ctx = NULL,
    .notify = env_notify,
    .clear = env_clear,
    .sleep = env_sleep,
    .now = env_now,
    .log = env_log,
};

static struct xenstore_domain_interface *attach(void)
{
    return arch->store_ring(&port);
}

void xenstore_init(void)
{
    xsc_init(&client, attach(), &env);
}

void xenstore_resume(bool new_domain)
{
    if (!new_domain) {
        xsc_attach(&client, attach());
        return;
    }
    xsc_reset(&client, attach());
}

evtchn_port_t xenstore_port(void)
{
    return port;
}

const char *xenstore_error_name(int err)
{
    return xsc_error_name(err);
}

void xenstore_queue_event(unsigned int id)
{
    xsc_queue_event(&client, id);
}

int xenstore_next_event(void)
{
    return xsc_next_event(&client);
}

void xenstore_poll_ring(void)
{
    xsc_poll(&client);
}

bool xenstore_idle(void)
{
    return xsc_idle(&client);
}

uint64_t xenstore_requests(void)
{
    return client.requests;
}

uint64_t xenstore_round_trips(void)
{
    return client.round_trips;
}

static struct xsw_arg text(const char *s)
{
    return (struct xsw_arg){.data = s, .len = kstrlen(s), .nul_terminated = true};
}

int xenstore_read_tx(uint32_t tx, const char *path, char *buf, size_t cap, size_t *len)
{
    struct xsw_arg arg = text(path);
    return xsc_request(&client, XS_READ, tx, &arg, 1, buf, cap, len, XS_NO_WATCH);
}

int xenstore_read(const char *path, char *buf, size_t cap, size_t *len)
{
    return xenstore_read_tx(XS_NO_TX, path, buf, cap, len);
}

int xenstore_write(const char *path, const char *value, size_t len)
{
    struct xsw_arg args[2] = {text(path), {.data = value, .len = len, .nul_terminated = false}};
    return xsc_request(&client, XS_WRITE, XS_NO_TX, args, 2, NULL, 0, NULL, XS_NO_WATCH);
}

int xenstore_write_string(const char *path, const char *value)
{
    return xenstore_write(path, value, kstrlen(value));
}

int xenstore_remove(const char *path)
{
    struct xsw_arg arg = text(path);
    return xsc_request(&client, XS_RM, XS_NO_TX, &arg, 1, NULL, 0, NULL, XS_NO_WATCH);
}

static int watch_request(uint32_t type, const char *path, unsigned int id)
{
    char token[3] = {(char)('0' + id / 10 % 10), (char)('0' + id % 10), 0};
    struct xsw_arg args[2] = {text(path), text(id < 10 ? token + 1 : token)};
    return xsc_request(&client, type, XS_NO_TX, args, 2, NULL, 0, NULL, XS_NO_WATCH);
}

int xenstore_watch(const char *path, unsigned int id)
{
    return watch_request(XS_WATCH, path, id);
}

int xenstore_unwatch(const char *path, unsigned int id)
{
    return watch_request(XS_UNWATCH, path, id);
}

/* The reply to XS_TRANSACTION_START is the id in decimal. */
static int parse_transaction_id(const char *reply, size_t len, uint32_t *tx)
{
    uint32_t id = 0;

    for (size_t i = 0; i < len && reply[i]; i++) {
        if (reply[i] < '0' || reply[i] > '9' || id > 0x19999999)
            return XSW_EPROTO;
        id = id * 10 + (uint32_t)(reply[i] - '0');
    }
    if (id == 0)
        return XSW_EPROTO;
    *tx = id;
    return XSW_OK;
}

int xenstore_read_then_start(const char *path, char *buf, size_t cap, size_t *len, int watch,
                             uint32_t *tx, int *start_err)
{
    uint64_t deadline = time_now_ns() + XSC_REPLY_TIMEOUT_NS;
    /* XS_TRANSACTION_START's payload is an empty string. */
    struct xsw_arg read_arg = text(path), start_arg = text("");
    char reply[16];
    size_t reply_len = 0;
    uint32_t read_id, start_id;
    int err = xsc_send(&client, XS_READ, XS_NO_TX, &read_arg, 1, &read_id, deadline);

    *start_err = err;
    if (err)
        return err;
    *start_err = xsc_send(&client, XS_TRANSACTION_START, XS_NO_TX, &start_arg, 1, &start_id,
                          deadline);
    err = xsc_finish(&client, read_id, buf, cap, len, watch, deadline);
    if (*start_err)
        return err;
    *start_err = xsc_finish(&client, start_id, reply, sizeof(reply), &reply_len, XS_NO_WATCH,
                            deadline);
    if (*start_err == XSW_OK)
        *start_err = parse_transaction_id(reply, reply_len, tx);
    return err;
}

static struct xsw_arg end_arg(bool commit)
{
    return text(commit ? "T" : "F");
}

int xenstore_transaction_end(uint32_t tx, bool commit)
{
    struct xsw_arg arg = end_arg(commit);
    return xsc_request(&client, XS_TRANSACTION_END, tx, &arg, 1, NULL, 0, NULL, XS_NO_WATCH);
}

int xenstore_change_and_commit(uint32_t tx, const char *path, const char *value, size_t len,
                               int *change_err)
{
    uint64_t deadline = time_now_ns() + XSC_REPLY_TIMEOUT_NS;
    struct xsw_arg args[2] = {text(path), {.data = value, .len = len, .nul_terminated = false}};
    struct xsw_arg commit = end_arg(true);
    uint32_t change_id, end_id;
    int err;

    *change_err = xsc_send(&client, value ? XS_WRITE : XS_RM, tx, args, value ? 2 : 1,
                           &change_id, deadline);
    if (*change_err)
        return *change_err;
    err = xsc_send(&client, XS_TRANSACTION_END, tx, &commit, 1, &end_id, deadline);
    *change_err = xsc_finish(&client, change_id, NULL, 0, NULL, XS_NO_WATCH, deadline);
    if (err)
        return err;
    /*
     * The event of our own change (C xenstored queues it before the commit's reply, oxenstored
     * after) is answered like any other: a read that finds what we wrote. It must not be
     * dropped as ours: C xenstored drops an event identical to one still queued for the
     * connection (send_event in xenstored_core.c), so a request written just after our commit
     * has no event of its own but this one (the lab's armrace test lost such a request so).
     */
    return xsc_finish(&client, end_id, NULL, 0, NULL, XS_NO_WATCH, deadline);
}
