/*
 * printf-style formatting into a kbuf, for the kernel's console lines. gcc checks the format
 * strings (format attribute), so a wrong conversion is a build error, not a garbled log line.
 * Supported: %% %c %s %.*s %d %u %x with the l/ll/z length modifiers and a 0-padded width.
 */
#ifndef XTV_LIB_FORMAT_H
#define XTV_LIB_FORMAT_H

#include <stdarg.h>

#include "logic/kstring.h"

void kbuf_vprintf(struct kbuf *b, const char *fmt, va_list args);
void kbuf_printf(struct kbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
