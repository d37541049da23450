/* Bounded string helpers: see kstring.h. Byte loops on purpose: inputs are small (<= 4 KiB)
 * and simple loops are easy to check for bounds. */
#include "kstring.h"

void kmemcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    while (n--)
        *d++ = *s++;
}

void kmemset(void *dst, int byte, size_t n)
{
    unsigned char *d = dst;

    while (n--)
        *d++ = (unsigned char)byte;
}

int kmemcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;

    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t kstrlen(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}

size_t kstrnlen(const char *s, size_t max)
{
    size_t n = 0;

    while (n < max && s[n])
        n++;
    return n;
}

bool kstreq(const char *s, size_t len, const char *word)
{
    size_t wlen = kstrlen(word);

    return len == wlen && kmemcmp(s, word, len) == 0;
}

bool kparse_ulong(const char *s, size_t len, unsigned long *value)
{
    unsigned long n = 0;

    /* 15 digits cannot overflow 64 bits. */
    if (len == 0 || len > 15)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        n = n * 10 + (unsigned long)(s[i] - '0');
    }
    *value = n;
    return true;
}

bool kstartswith(const char *s, size_t len, const char *prefix)
{
    size_t plen = kstrlen(prefix);

    return len >= plen && kmemcmp(s, prefix, plen) == 0;
}

void kbuf_init(struct kbuf *b, char *storage, size_t cap)
{
    b->data = storage;
    b->cap = cap;
    kbuf_reset(b);
}

void kbuf_reset(struct kbuf *b)
{
    b->len = 0;
    b->truncated = false;
    if (b->cap)
        b->data[0] = '\0';
}

void kbuf_putc(struct kbuf *b, char c)
{
    /* Keep one byte for the NUL so data is always a C string. */
    if (b->len + 1 >= b->cap) {
        b->truncated = true;
        return;
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void kbuf_putn(struct kbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kbuf_putc(b, s[i]);
}

void kbuf_puts(struct kbuf *b, const char *s)
{
    while (*s)
        kbuf_putc(b, *s++);
}

void kbuf_put_u64(struct kbuf *b, uint64_t v)
{
    char digits[20];
    unsigned n = 0;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        kbuf_putc(b, digits[--n]);
}

void kbuf_put_hex(struct kbuf *b, uint64_t v, unsigned digits)
{
    static const char hex[] = "0123456789abcdef";

    if (digits > 16)
        digits = 16;
    while (digits--)
        kbuf_putc(b, hex[(v >> (digits * 4)) & 0xf]);
}

void kbuf_put_printable(struct kbuf *b, const char *s, size_t n, size_t max)
{
    size_t shown = n < max ? n : max;

    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f && c != '\\') {
            kbuf_putc(b, (char)c);
        } else {
            kbuf_puts(b, "\\x");
            kbuf_put_hex(b, c, 2);
        }
    }
    if (shown < n) {
        kbuf_puts(b, "...(");
        kbuf_put_u64(b, n);
        kbuf_puts(b, " bytes)");
    }
}

void kbuf_put_json_string(struct kbuf *b, const char *s, size_t n)
{
    kbuf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        switch (c) {
        case '"':
            kbuf_puts(b, "\\\"");
            break;
        case '\\':
            kbuf_puts(b, "\\\\");
            break;
        case '\b':
            kbuf_puts(b, "\\b");
            break;
        case '\f':
            kbuf_puts(b, "\\f");
            break;
        case '\n':
            kbuf_puts(b, "\\n");
            break;
        case '\r':
            kbuf_puts(b, "\\r");
            break;
        case '\t':
            kbuf_puts(b, "\\t");
            break;
        default:
            if (c < 0x20) {
                kbuf_puts(b, "\\u00");
                kbuf_put_hex(b, c, 2);
            } else {
                kbuf_putc(b, (char)c);
            }
        }
    }
    kbuf_putc(b, '"');
}
