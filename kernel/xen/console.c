/*
 * Never block for long: a stuck or absent xenconsoled must not hang the kernel, so a full ring
 * is waited on for at most CONSOLE_WAIT_NS, after which output is dropped (and counted) until
 * the reader makes room again.
 */
#include "xen/console.h"

#include <stdarg.h>
#include <stdint.h>

#include "arch/cpu.h"
#include "lib/format.h"
#include "xen/events.h"
#include "xen/memory.h"
#include "xen/time.h"

#define CONSOLE_WAIT_NS (1000 * NSEC_PER_MSEC)
#define CONSOLE_FLUSH_NS (2000 * NSEC_PER_MSEC)
#define LINE_MAX 256

static struct xencons_interface *ring;
static evtchn_port_t port;
static bool stalled;

static void attach(void)
{
    ring = mfn_to_virt(xen_start_info->console.domU.mfn);
    port = xen_start_info->console.domU.evtchn;
    stalled = false;
}

void console_init(void)
{
    attach();
}

bool console_attached(void)
{
    return ring != NULL;
}

static uint32_t used_space(void)
{
    uint32_t cons = READ_ONCE(ring->out_cons);
    rmb();
    return ring->out_prod - cons;
}

/* Wait until the reader moved past what `done` says, or the deadline passed. */
static bool wait_for_reader(bool (*done)(void), uint64_t budget_ns)
{
    uint64_t deadline = time_now_ns() + budget_ns;

    while (!done()) {
        if (time_now_ns() >= deadline)
            return false;
        evtchn_clear_pending(port);
        if (done())
            return true;
        evtchn_notify(port);
        evtchn_poll(&port, 1, deadline);
    }
    return true;
}

static bool ring_has_room(void)
{
    return used_space() < sizeof(ring->out);
}

static bool ring_is_empty(void)
{
    return used_space() == 0;
}

void console_write(const char *text, size_t len)
{
    while (len > 0) {
        if (!ring_has_room()) {
            if (stalled || !wait_for_reader(ring_has_room, CONSOLE_WAIT_NS)) {
                stalled = true;
                return;
            }
        }
        stalled = false;

        uint32_t prod = ring->out_prod;
        uint32_t room = (uint32_t)sizeof(ring->out) - used_space();
        uint32_t chunk = len < room ? (uint32_t)len : room;
        for (uint32_t i = 0; i < chunk; i++)
            ring->out[MASK_XENCONS_IDX(prod + i, ring->out)] = text[i];
        wmb();
        WRITE_ONCE(ring->out_prod, prod + chunk);
        evtchn_notify(port);
        text += chunk;
        len -= chunk;
    }
}

void console_printf(const char *fmt, ...)
{
    char line[LINE_MAX];
    struct kbuf b;
    va_list args;

    kbuf_init(&b, line, sizeof(line) - 1);
    va_start(args, fmt);
    kbuf_vprintf(&b, fmt, args);
    va_end(args);
    line[b.len] = '\n';
    console_write(line, b.len + 1);
}

void console_flush(void)
{
    if (!stalled)
        wait_for_reader(ring_is_empty, CONSOLE_FLUSH_NS);
}

void console_suspend(void)
{
    xen_start_info->console.domU.mfn = mfn_to_pfn(xen_start_info->console.domU.mfn);
}

void console_resume(bool new_domain)
{
    /* A new domain's toolstack wrote the new MFN and port; a cancelled suspend left our PFN. */
    if (!new_domain)
        xen_start_info->console.domU.mfn = pfn_to_mfn(xen_start_info->console.domU.mfn);
    attach();
}
