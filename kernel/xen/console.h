/*
 * The PV console ring (struct xencons_interface), read by xenconsoled in dom0.
 * Output only: the kernel takes no console input.
 */
#ifndef XTV_XEN_CONSOLE_H
#define XTV_XEN_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

void console_init(void);
/* False before console_init(): early faults cannot print. */
bool console_attached(void);
void console_write(const char *text, size_t len);
/* One line: formatted, '\n' appended, cut at 255 characters. */
void console_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Wait (bounded) until dom0 has read everything we wrote: the domain's ring disappears with it,
 * so without this the last lines before a shutdown would be lost.
 */
void console_flush(void);

/* Turn the ring's MFN in start_info into a PFN, as a suspending PV guest must. */
void console_suspend(void);
void console_resume(bool new_domain);

#endif
