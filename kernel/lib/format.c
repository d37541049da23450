#include "lib/format.h"

#include <stdbool.h>
#include <stdint.h>

static void put_number(struct kbuf *b, uint64_t value, unsigned base, bool negative,
                       unsigned width, char pad)
{
    static const char digits[] = "0123456789abcdef";
    char text[24];
    unsigned n = 0;

    do {
        text[n++] = digits[value % base];
        value /= base;
    } while (value);
    if (negative)
        text[n++] = '-';
    while (width > n) {
        kbuf_putc(b, pad);
        width--;
    }
    while (n)
        kbuf_putc(b, text[--n]);
}

void kbuf_vprintf(struct kbuf *b, const char *fmt, va_list args)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            kbuf_putc(b, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        unsigned width = 0;
        int precision = -1;
        unsigned longs = 0;

        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (unsigned)(*fmt++ - '0');
        if (fmt[0] == '.' && fmt[1] == '*') {
            precision = va_arg(args, int);
            fmt += 2;
        }
        while (*fmt == 'l' || *fmt == 'z') {
            longs++;
            fmt++;
        }

        switch (*fmt) {
        case '%':
            kbuf_putc(b, '%');
            break;
        case 'c':
            kbuf_putc(b, (char)va_arg(args, int));
            break;
        case 's': {
            const char *s = va_arg(args, const char *);
            if (!s)
                s = "(null)";
            if (precision >= 0)
                kbuf_putn(b, s, kstrnlen(s, (size_t)precision));
            else
                kbuf_puts(b, s);
            break;
        }
        case 'd': {
            int64_t v = longs ? va_arg(args, long) : va_arg(args, int);
            uint64_t magnitude = v < 0 ? -(uint64_t)v : (uint64_t)v;
            put_number(b, magnitude, 10, v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = longs ? va_arg(args, unsigned long) : va_arg(args, unsigned int);
            put_number(b, v, *fmt == 'x' ? 16 : 10, false, width, pad);
            break;
        }
        case '\0':
            return;
        default:
            kbuf_putc(b, '?');
            break;
        }
    }
}

void kbuf_printf(struct kbuf *b, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    kbuf_vprintf(b, fmt, args);
    va_end(args);
}
