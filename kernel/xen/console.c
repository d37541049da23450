/*
 * Never wait on the console while a request may be waiting: xenconsoled reads a domain's ring
 * at most 30 times per 200 ms (RATE_LIMIT_ALLOWANCE and RATE_LIMIT_PERIOD in
 * tools/console/daemon/io.c) and then leaves it alone until the period ends, so a guest that
 * waited for room stalled its xenstore answers behind its own log lines (seen: 20-50 of 300
 * back-to-back requests answered after 200 ms, and after more than 1 s on a slower host).
 *
 * Output goes into the ring while it has room and into a backlog behind it when not; the main
 * loop moves the backlog on whenever it runs (console_push) and sleeps on the console port too
 * while there is one. Only console_flush waits, bounded, before the domain goes away. Lines
 * that fit in neither are dropped, counted, and the count is the first line once output flows.
 * Each line that enters the ring is notified at once: a kernel that faults next (a stack
 * overflow leaves no handler to flush) must not take its last words with it.
 */
#include "xen/console.h"

#include <stdarg.h>
#include <stdint.h>

#include "arch/cpu.h"
#include "kernel.h"
#include "lib/format.h"
#include "xen/events.h"
#include "xen/time.h"

#define CONSOLE_FLUSH_NS (2000 * NSEC_PER_MSEC)
#define LINE_MAX 256
#define BACKLOG_SIZE 4096

static struct xencons_interface *ring;
static evtchn_port_t port;
/*
 * Bytes written but not yet in the ring, oldest first, whole lines only. Kept across a resume
 * (the lines belong to the guest, not to the ring) and moved into the new ring.
 */
static char backlog[BACKLOG_SIZE];
static size_t backlog_len;
/* Lines lost while ring and backlog were full; said (and reset) once there is room again. */
static uint64_t dropped_lines;

static void attach(void)
{
    ring = arch->console_ring(&port);
}

void console_init(void)
{
    backlog_len = 0;
    dropped_lines = 0;
    attach();
}

bool console_attached(void)
{
    return ring != NULL;
}

evtchn_port_t console_port(void)
{
    return port;
}

static uint32_t ring_room(void)
{
    uint32_t cons = READ_ONCE(ring->out_cons);
    rmb();
    uint32_t used = ring->out_prod - cons;
    return used > sizeof(ring->out) ? 0 : (uint32_t)sizeof(ring->out) - used;
}

/* Copy text into the ring, which has room for all of it, and tell the reader. */
static void put(const char *text, uint32_t len)
{
    uint32_t prod = ring->out_prod;

    for (uint32_t i = 0; i < len; i++)
        ring->out[MASK_XENCONS_IDX(prod + i, ring->out)] = text[i];
    wmb();
    WRITE_ONCE(ring->out_prod, prod + len);
    evtchn_notify(port);
}

/* Move the backlog into the ring, line by line, as far as the ring has room. */
static void drain_backlog(void)
{
    size_t moved = 0;

    while (moved < backlog_len) {
        size_t line = 0;
        while (moved + line < backlog_len && backlog[moved + line++] != '\n')
            ;
        if (line > ring_room())
            break;
        put(backlog + moved, (uint32_t)line);
        moved += line;
    }
    for (size_t i = moved; i < backlog_len; i++)
        backlog[i - moved] = backlog[i];
    backlog_len -= moved;
}

/* Queue one line (at most LINE_MAX bytes) behind what is queued already, or drop it. */
static bool queue_line(const char *text, size_t len)
{
    if (backlog_len == 0 && len <= ring_room()) {
        put(text, (uint32_t)len);
        return true;
    }
    if (len > sizeof(backlog) - backlog_len)
        return false;
    for (size_t i = 0; i < len; i++)
        backlog[backlog_len + i] = text[i];
    backlog_len += len;
    return true;
}

/* Once there is room again: say how many lines were missed, before anything else. */
static void report_dropped(void)
{
    char notice[80];
    struct kbuf b;

    if (!dropped_lines)
        return;
    kbuf_init(&b, notice, sizeof(notice));
    kbuf_printf(&b, "console: %lu lines dropped (xenconsoled too slow)\n",
                (unsigned long)dropped_lines);
    if (queue_line(notice, b.len))
        dropped_lines = 0;
}

void console_write(const char *text, size_t len)
{
    drain_backlog();
    while (len > 0) {
        size_t line = 0;
        while (line < len && line < LINE_MAX && text[line++] != '\n')
            ;
        report_dropped();
        if (dropped_lines || !queue_line(text, line))
            dropped_lines++;
        text += line;
        len -= line;
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

bool console_push(void)
{
    drain_backlog();
    if (backlog_len == 0)
        report_dropped();
    return backlog_len == 0 && dropped_lines == 0;
}

static bool all_read(void)
{
    return backlog_len == 0 && dropped_lines == 0 && ring_room() == sizeof(ring->out);
}

void console_flush(void)
{
    uint64_t deadline = time_now_ns() + CONSOLE_FLUSH_NS;

    for (;;) {
        evtchn_clear_pending(port);
        console_push();
        if (all_read() || time_now_ns() >= deadline)
            return;
        evtchn_poll(&port, 1, deadline);
    }
}

void console_resume(bool new_domain)
{
    /* The ring and port may have changed with the domain; the boot mode knows where they are. */
    (void)new_domain;
    attach();
    console_push();
}
