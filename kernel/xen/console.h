/*
 * The PV console ring (struct xencons_interface), read by xenconsoled in dom0.
 * Output only: the kernel takes no console input.
 */
#ifndef XTV_XEN_CONSOLE_H
#define XTV_XEN_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "xen/xen_headers.h"

void console_init(void);
/* False before console_init(): early faults cannot print. */
bool console_attached(void);
/* The channel xenconsoled notifies once it has read: the main loop sleeps on it while
 * console_push() leaves a backlog. */
evtchn_port_t console_port(void);
/* Queue text (whole lines) for the ring without waiting; see console.c. */
void console_write(const char *text, size_t len);
/* One line: formatted, '\n' appended, cut at 255 characters. */
void console_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Wait (bounded) until dom0 has read everything we wrote: the domain's ring disappears with it,
 * so without this the last lines before a shutdown would be lost.
 */
void console_flush(void);
/*
 * Move queued lines into the ring as far as it has room (each notified); never
 * waits. True when nothing is left queued.
 */
bool console_push(void);

void console_resume(bool new_domain);

#endif
