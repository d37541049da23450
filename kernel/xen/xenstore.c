/*
 * Index handling follows io/xs_wire.h: free-running 32-bit indices, masked on access, that need
 * not start at 0. We keep no copy of them, so whatever a restore leaves in the page is right.
 */
#include "xen/xenstore.h"

#include <stdint.h>

#include "arch/cpu.h"
#include "common/kstring.h"
#include "xen/console.h"
#include "xen/events.h"
#include "xen/memory.h"
#include "xen/time.h"

#define REPLY_TIMEOUT_NS (10 * NSEC_PER_SEC)

static struct xenstore_domain_interface *ring;
static evtchn_port_t port;
static uint32_t next_req_id;

/* The message being received, possibly incomplete. */
static char rx[XSW_MESSAGE_MAX];
static size_t rx_len;
static bool rx_broken;
static char tx[XSW_MESSAGE_MAX];

static unsigned char event_queue[XS_MAX_WATCHES];
static unsigned int event_count;

static void attach(void)
{
    ring = mfn_to_virt(xen_start_info->store_mfn);
    port = xen_start_info->store_evtchn;
}

static void reset_client(void)
{
    rx_len = 0;
    rx_broken = false;
    event_count = 0;
}

void xenstore_init(void)
{
    attach();
    reset_client();
    next_req_id = 1;
}

void xenstore_suspend(void)
{
    xen_start_info->store_mfn = mfn_to_pfn(xen_start_info->store_mfn);
}

void xenstore_resume(bool new_domain)
{
    if (!new_domain) {
        xen_start_info->store_mfn = pfn_to_mfn(xen_start_info->store_mfn);
        attach();
        return;
    }
    attach();
    reset_client();
    /* Replies meant for the old domain are meaningless now; drop them as Linux does. */
    WRITE_ONCE(ring->rsp_cons, READ_ONCE(ring->rsp_prod));
    mb();
    evtchn_notify(port);
}

evtchn_port_t xenstore_port(void)
{
    return port;
}

const char *xenstore_error_name(int err)
{
    if (err == XS_ERR_TIMEOUT)
        return "ETIMEDOUT";
    return xsw_error_name((enum xsw_error)err);
}

void xenstore_queue_event(unsigned int id)
{
    for (unsigned int i = 0; i < event_count; i++)
        if (event_queue[i] == id)
            return;
    if (event_count < XS_MAX_WATCHES)
        event_queue[event_count++] = (unsigned char)id;
}

int xenstore_next_event(void)
{
    if (event_count == 0)
        return -1;
    int id = event_queue[0];
    event_count--;
    for (unsigned int i = 0; i < event_count; i++)
        event_queue[i] = event_queue[i + 1];
    return id;
}

static void handle_watch_event(const struct xsw_msg *msg)
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
    if (id >= XS_MAX_WATCHES)
        goto bad;
    xenstore_queue_event(id);
    return;
bad:
    console_printf("xenstore: ignoring watch event with an unknown token");
}

/*
 * Pull bytes of the current message out of the ring. Returns true with a decoded message once
 * one is complete (it stays valid until the next call), false when the ring ran dry first.
 */
static bool receive_message(struct xsw_msg *msg)
{
    if (rx_broken)
        return false;
    for (;;) {
        size_t size = xsw_message_size(rx, rx_len);
        if (size == SIZE_MAX) {
            console_printf("xenstore: reply stream broken (length beyond %u); giving up on it",
                           XENSTORE_PAYLOAD_MAX);
            rx_broken = true;
            return false;
        }
        size_t target = size ? size : XSW_HEADER_SIZE;
        if (size && rx_len == size) {
            rx_len = 0;
            if (xsw_decode(rx, size, msg))
                return true;
            console_printf("xenstore: dropping a malformed message");
            continue;
        }

        uint32_t cons = ring->rsp_cons;
        uint32_t prod = READ_ONCE(ring->rsp_prod);
        rmb();
        if (prod == cons)
            return false;
        size_t n = prod - cons;
        if (n > target - rx_len)
            n = target - rx_len;
        for (size_t i = 0; i < n; i++)
            rx[rx_len + i] = ring->rsp[MASK_XENSTORE_IDX(cons + (uint32_t)i)];
        rx_len += n;
        mb();
        WRITE_ONCE(ring->rsp_cons, cons + (uint32_t)n);
        evtchn_notify(port);
    }
}

void xenstore_poll_ring(void)
{
    struct xsw_msg msg;

    evtchn_clear_pending(port);
    while (receive_message(&msg)) {
        if (msg.type == XS_WATCH_EVENT)
            handle_watch_event(&msg);
        else
            console_printf("xenstore: dropping unexpected %s reply id %u", xsw_type_name(msg.type),
                           msg.req_id);
    }
}

/* Sleep until the store port fires or the deadline passes; false once past the deadline. */
static bool wait_for_store(uint64_t deadline)
{
    if (time_now_ns() >= deadline)
        return false;
    evtchn_poll(&port, 1, deadline);
    evtchn_clear_pending(port);
    return true;
}

static int send_message(size_t len, uint64_t deadline)
{
    size_t sent = 0;

    while (sent < len) {
        uint32_t cons = READ_ONCE(ring->req_cons);
        uint32_t prod = ring->req_prod;
        mb();
        if (prod - cons > XENSTORE_RING_SIZE) {
            console_printf("xenstore: request ring indices corrupt (%u, %u)", prod, cons);
            return XSW_EIO;
        }
        uint32_t room = XENSTORE_RING_SIZE - (prod - cons);
        if (room == 0) {
            if (!wait_for_store(deadline))
                return XS_ERR_TIMEOUT;
            continue;
        }
        size_t n = len - sent < room ? len - sent : room;
        for (size_t i = 0; i < n; i++)
            ring->req[MASK_XENSTORE_IDX(prod + (uint32_t)i)] = tx[sent + i];
        wmb();
        WRITE_ONCE(ring->req_prod, prod + (uint32_t)n);
        evtchn_notify(port);
        sent += n;
    }
    return 0;
}

/* Send tx[0..len), wait for the reply with req_id, copy its payload into reply (if given). */
static int transact(size_t len, uint32_t req_id, char *reply, size_t cap, size_t *reply_len)
{
    uint64_t deadline = time_now_ns() + REPLY_TIMEOUT_NS;
    struct xsw_msg msg;
    int err = send_message(len, deadline);

    if (err)
        return err;
    for (;;) {
        evtchn_clear_pending(port);
        if (!receive_message(&msg)) {
            if (!wait_for_store(deadline))
                return XS_ERR_TIMEOUT;
            continue;
        }
        if (msg.type == XS_WATCH_EVENT) {
            handle_watch_event(&msg);
            continue;
        }
        if (msg.req_id != req_id) {
            console_printf("xenstore: dropping reply id %u, waiting for %u", msg.req_id, req_id);
            continue;
        }
        err = xsw_reply_error(&msg);
        if (err == XSW_OK && reply) {
            size_t n = msg.len < cap - 1 ? msg.len : cap - 1;
            kmemcpy(reply, msg.payload, n);
            reply[n] = '\0';
            if (reply_len)
                *reply_len = n;
        }
        return err;
    }
}

static uint32_t take_req_id(void)
{
    uint32_t id = next_req_id++;
    if (next_req_id == 0)
        next_req_id = 1;
    return id;
}

int xenstore_read(const char *path, char *buf, size_t cap, size_t *len)
{
    uint32_t id = take_req_id();
    size_t n = xsw_encode_read(tx, sizeof(tx), id, 0, path);
    return n ? transact(n, id, buf, cap, len) : XSW_E2BIG;
}

int xenstore_write(const char *path, const char *value, size_t len)
{
    uint32_t id = take_req_id();
    size_t n = xsw_encode_write(tx, sizeof(tx), id, 0, path, value, len);
    return n ? transact(n, id, NULL, 0, NULL) : XSW_E2BIG;
}

int xenstore_write_string(const char *path, const char *value)
{
    return xenstore_write(path, value, kstrlen(value));
}

int xenstore_remove(const char *path)
{
    uint32_t id = take_req_id();
    size_t n = xsw_encode_rm(tx, sizeof(tx), id, 0, path);
    return n ? transact(n, id, NULL, 0, NULL) : XSW_E2BIG;
}

int xenstore_watch(const char *path, unsigned int id)
{
    char token[4] = {(char)('0' + id / 10 % 10), (char)('0' + id % 10), 0, 0};
    const char *t = id < 10 ? token + 1 : token;
    uint32_t req = take_req_id();
    size_t n = xsw_encode_watch(tx, sizeof(tx), req, path, t);
    return n ? transact(n, req, NULL, 0, NULL) : XSW_E2BIG;
}
