/* The xenstore ring client: see xs_client.h for the rules it keeps. */
#include "xs_client.h"

#include "kstring.h"

/* The page is shared with xenstored: every index access is a single volatile access. */
#define LOAD(x) (*(const volatile __typeof__(x) *)&(x))
#define STORE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
/* x86 orders loads and stores except store->load; the fences still stop the compiler. */
#define FENCE_ACQUIRE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define FENCE_RELEASE() __atomic_thread_fence(__ATOMIC_RELEASE)
#define FENCE_FULL() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static void say(struct xsc *c, const char *a, uint64_t n, const char *b)
{
    char line[XSC_LOG_MAX];
    struct kbuf k;

    kbuf_init(&k, line, sizeof(line));
    kbuf_puts(&k, "xenstore: ");
    kbuf_puts(&k, a);
    if (b) {
        kbuf_put_u64(&k, n);
        kbuf_puts(&k, b);
    }
    c->env->log(c->env->ctx, line);
}

static const char *error_meaning(uint32_t error)
{
    switch (error) {
    case XENSTORE_ERROR_COMM:
        return " (communication problem)";
    case XENSTORE_ERROR_RINGIDX:
        return " (invalid ring index)";
    case XENSTORE_ERROR_PROTO:
        return " (protocol violation)";
    default:
        return " (unknown)";
    }
}

/* Say once per new value what xenstored wrote into the page about our connection. */
static void check_connection(struct xsc *c)
{
    uint32_t error = LOAD(c->ring->error);
    uint32_t connection = LOAD(c->ring->connection);

    if (error != c->reported_error) {
        c->reported_error = error;
        if (error != XENSTORE_ERROR_NONE) {
            char why[XSC_LOG_MAX];
            struct kbuf k;

            kbuf_init(&k, why, sizeof(why));
            kbuf_puts(&k, error_meaning(error));
            kbuf_puts(&k, "; xenstored ignores this connection now, requests will time out");
            say(c, "connection broken: xenstored reports error ", error, why);
        } else {
            say(c, "connection error cleared", 0, NULL);
        }
    }
    if (connection != c->reported_connection) {
        c->reported_connection = connection;
        if (connection != XENSTORE_CONNECTED)
            say(c, "connection state ", connection, " (not connected)");
        else
            say(c, "connected again", 0, NULL);
    }
}

static void reset_state(struct xsc *c)
{
    c->rx_len = 0;
    c->rx_broken = false;
    c->tx_len = 0;
    c->tx_sent = 0;
    c->event_count = 0;
    c->outstanding = 0;
    c->reported_error = XENSTORE_ERROR_NONE;
    c->reported_connection = XENSTORE_CONNECTED;
    c->reported_req_corrupt = false;
    c->reported_rsp_corrupt = false;
}

void xsc_init(struct xsc *c, struct xenstore_domain_interface *ring, const struct xsc_env *env)
{
    c->ring = ring;
    c->env = env;
    c->next_req_id = 1;
    c->requests = 0;
    c->round_trips = 0;
    reset_state(c);
}

void xsc_attach(struct xsc *c, struct xenstore_domain_interface *ring)
{
    c->ring = ring;
}

void xsc_reset(struct xsc *c, struct xenstore_domain_interface *ring)
{
    c->ring = ring;
    reset_state(c);
    /* Replies meant for the old domain are meaningless now; drop them as Linux does. */
    STORE(ring->rsp_cons, LOAD(ring->rsp_prod));
    FENCE_FULL();
    c->env->notify(c->env->ctx);
}

void xsc_queue_event(struct xsc *c, unsigned int id)
{
    for (unsigned int i = 0; i < c->event_count; i++)
        if (c->events[i] == id)
            return;
    if (c->event_count < XSC_MAX_WATCHES)
        c->events[c->event_count++] = (unsigned char)id;
}

static void drop_event(struct xsc *c, unsigned int id)
{
    for (unsigned int i = 0; i < c->event_count; i++) {
        if (c->events[i] != id)
            continue;
        c->event_count--;
        for (unsigned int j = i; j < c->event_count; j++)
            c->events[j] = c->events[j + 1];
        return;
    }
}

int xsc_next_event(struct xsc *c)
{
    if (c->event_count == 0)
        return -1;
    int id = c->events[0];
    drop_event(c, (unsigned int)id);
    return id;
}

bool xsc_idle(const struct xsc *c)
{
    uint32_t prod = LOAD(c->ring->rsp_prod);
    uint32_t cons = LOAD(c->ring->rsp_cons);

    if (c->event_count)
        return false;
    /* Bytes we will never read (a broken stream, corrupt indices) must not keep us awake. */
    return prod == cons || c->rx_broken || prod - cons > XENSTORE_RING_SIZE;
}

static void handle_watch_event(struct xsc *c, const struct xsw_msg *msg)
{
    const char *path, *token;
    size_t path_len, token_len;
    unsigned int id = 0;

    if (!xsw_decode_watch_event(msg, &path, &path_len, &token, &token_len) || token_len == 0 ||
        token_len > 2)
        goto bad;
    for (size_t i = 0; i < token_len; i++) {
        if (token[i] < '0' || token[i] > '9')
            goto bad;
        id = id * 10 + (unsigned int)(token[i] - '0');
    }
    if (id >= XSC_MAX_WATCHES)
        goto bad;
    xsc_queue_event(c, id);
    return;
bad:
    say(c, "ignoring watch event with an unknown token", 0, NULL);
}

enum rx_result { RX_MESSAGE, RX_EMPTY, RX_BROKEN };

/*
 * Pull bytes of the current message out of the ring. RX_MESSAGE with a decoded message once
 * one is complete (valid until the next call), RX_EMPTY when the ring ran dry first.
 */
static enum rx_result receive_message(struct xsc *c, struct xsw_msg *msg)
{
    struct xenstore_domain_interface *ring = c->ring;

    if (c->rx_broken)
        return RX_BROKEN;
    for (;;) {
        size_t size = xsw_message_size(c->rx, c->rx_len);
        if (size == SIZE_MAX) {
            say(c, "reply stream broken (length beyond ", XENSTORE_PAYLOAD_MAX,
                "); giving up on it");
            c->rx_broken = true;
            return RX_BROKEN;
        }
        size_t target = size ? size : XSW_HEADER_SIZE;
        if (size && c->rx_len == size) {
            c->rx_len = 0;
            if (xsw_decode(c->rx, size, msg))
                return RX_MESSAGE;
            say(c, "dropping a malformed message", 0, NULL);
            continue;
        }

        uint32_t cons = LOAD(ring->rsp_cons);
        uint32_t prod = LOAD(ring->rsp_prod);
        FENCE_ACQUIRE();
        if (prod == cons)
            return RX_EMPTY;
        if (prod - cons > XENSTORE_RING_SIZE) {
            if (!c->reported_rsp_corrupt)
                say(c, "response ring indices corrupt; not reading them", 0, NULL);
            c->reported_rsp_corrupt = true;
            return RX_EMPTY;
        }
        size_t n = prod - cons;
        if (n > target - c->rx_len)
            n = target - c->rx_len;
        for (size_t i = 0; i < n; i++)
            c->rx[c->rx_len + i] = LOAD(ring->rsp[MASK_XENSTORE_IDX(cons + (uint32_t)i)]);
        c->rx_len += n;
        FENCE_FULL();
        STORE(ring->rsp_cons, cons + (uint32_t)n);
        c->env->notify(c->env->ctx);
    }
}

/* Write what fits of the pending request. false when the request ring is corrupt. */
static bool push_request(struct xsc *c)
{
    struct xenstore_domain_interface *ring = c->ring;

    while (c->tx_sent < c->tx_len) {
        uint32_t cons = LOAD(ring->req_cons);
        uint32_t prod = LOAD(ring->req_prod);
        FENCE_FULL();
        if (prod - cons > XENSTORE_RING_SIZE) {
            if (!c->reported_req_corrupt)
                say(c, "request ring indices corrupt; not writing", 0, NULL);
            c->reported_req_corrupt = true;
            return false;
        }
        uint32_t room = XENSTORE_RING_SIZE - (prod - cons);
        if (room == 0)
            return true;
        size_t n = c->tx_len - c->tx_sent;
        if (n > room)
            n = room;
        for (size_t i = 0; i < n; i++)
            STORE(ring->req[MASK_XENSTORE_IDX(prod + (uint32_t)i)], c->tx[c->tx_sent + i]);
        FENCE_RELEASE();
        STORE(ring->req_prod, prod + (uint32_t)n);
        c->env->notify(c->env->ctx);
        c->tx_sent += n;
    }
    return true;
}

/* Queue every event the ring holds; replies nobody waits for are dropped (and said). */
static void drain(struct xsc *c)
{
    struct xsw_msg msg;

    while (receive_message(c, &msg) == RX_MESSAGE) {
        if (msg.type == XS_WATCH_EVENT)
            handle_watch_event(c, &msg);
        else
            say(c, "dropping a reply nobody waits for, id ", msg.req_id, "");
    }
}

void xsc_poll(struct xsc *c)
{
    c->env->clear(c->env->ctx);
    drain(c);
    (void)push_request(c);
    check_connection(c);
}

/* Until the deadline: push the pending request out; false on timeout or a corrupt ring. */
static int flush_request(struct xsc *c, uint64_t deadline)
{
    for (;;) {
        c->env->clear(c->env->ctx);
        if (!push_request(c))
            return XSW_EIO;
        if (c->tx_sent == c->tx_len)
            return XSW_OK;
        /* Replies stay in the response ring meanwhile: one may be for a request sent earlier
         * (xenstored queues its output, so a full response ring never blocks it). */
        if (c->env->now(c->env->ctx) >= deadline) {
            check_connection(c);
            return XSC_ERR_TIMEOUT;
        }
        c->env->sleep(c->env->ctx, deadline);
    }
}

int xsc_send(struct xsc *c, uint32_t type, uint32_t tx_id, const struct xsw_arg *args,
             size_t nargs, uint32_t *req_id, uint64_t deadline_ns)
{
    int err = flush_request(c, deadline_ns);
    if (err)
        return err;

    uint32_t id = c->next_req_id++;
    if (c->next_req_id == 0)
        c->next_req_id = 1;
    size_t n = xsw_encode(c->tx, sizeof(c->tx), type, id, tx_id, args, nargs);
    if (!n)
        return XSW_E2BIG;
    c->tx_len = n;
    c->tx_sent = 0;
    c->requests++;
    if (c->outstanding++ == 0)
        c->round_trips++;
    *req_id = id;
    return flush_request(c, deadline_ns);
}

int xsc_finish(struct xsc *c, uint32_t req_id, char *reply, size_t cap, size_t *reply_len,
               int consume_watch, uint64_t deadline_ns)
{
    struct xsw_msg msg;

    for (;;) {
        c->env->clear(c->env->ctx);
        enum rx_result got = receive_message(c, &msg);
        if (got != RX_MESSAGE) {
            (void)push_request(c);
            if (c->env->now(c->env->ctx) >= deadline_ns) {
                check_connection(c);
                c->outstanding = 0;
                return XSC_ERR_TIMEOUT;
            }
            c->env->sleep(c->env->ctx, deadline_ns);
            continue;
        }
        if (msg.type == XS_WATCH_EVENT) {
            handle_watch_event(c, &msg);
            continue;
        }
        if (msg.req_id != req_id) {
            say(c, "dropping a reply nobody waits for, id ", msg.req_id, "");
            continue;
        }
        if (c->outstanding)
            c->outstanding--;
        if (consume_watch >= 0)
            drop_event(c, (unsigned int)consume_watch);
        int err = xsw_reply_error(&msg);
        if (err == XSW_OK && reply && cap) {
            size_t n = msg.len < cap - 1 ? msg.len : cap - 1;
            kmemcpy(reply, msg.payload, n);
            reply[n] = '\0';
            if (reply_len)
                *reply_len = n;
        }
        return err;
    }
}

int xsc_request(struct xsc *c, uint32_t type, uint32_t tx_id, const struct xsw_arg *args,
                size_t nargs, char *reply, size_t cap, size_t *reply_len, int consume_watch)
{
    uint64_t deadline = c->env->now(c->env->ctx) + XSC_REPLY_TIMEOUT_NS;
    uint32_t id;
    int err = xsc_send(c, type, tx_id, args, nargs, &id, deadline);

    if (err)
        return err;
    return xsc_finish(c, id, reply, cap, reply_len, consume_watch, deadline);
}

const char *xsc_error_name(int err)
{
    if (err == XSC_ERR_TIMEOUT)
        return "ETIMEDOUT";
    return xsw_error_name((enum xsw_error)err);
}
