/*
 * Bounded byte-string helpers and a small append-only text buffer.
 *
 * Pure code: compiles freestanding for the kernel and with libc on the host (unit tests, fuzzing).
 * Every name carries a k prefix so the host build never collides with libc's memcpy, strlen, ...
 * (gcc may still emit calls to memcpy/memset for struct copies: the kernel build provides those,
 * see lib/cc_runtime.c).
 */
#ifndef XTV_KSTRING_H
#define XTV_KSTRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void kmemcpy(void *dst, const void *src, size_t n);
void kmemset(void *dst, int byte, size_t n);
int kmemcmp(const void *a, const void *b, size_t n);
size_t kstrlen(const char *s);
/* Length of s, but at most max (s need not be NUL-terminated within max bytes). */
size_t kstrnlen(const char *s, size_t max);
/* True when the counted string (s, len) equals the NUL-terminated word. */
bool kstreq(const char *s, size_t len, const char *word);
bool kstartswith(const char *s, size_t len, const char *prefix);
/* A decimal number of 1 to 15 digits and nothing else (no sign, no spaces); false if not. */
bool kparse_ulong(const char *s, size_t len, unsigned long *value);

/*
 * Append-only text buffer over caller storage. Appends that do not fit are cut at the capacity
 * and set `truncated`, so callers format freely and check once. The text is always
 * NUL-terminated (cap includes the NUL), so it can be handed to code that wants a C string.
 */
struct kbuf {
    char *data;
    size_t cap;
    size_t len;
    bool truncated;
};

void kbuf_init(struct kbuf *b, char *storage, size_t cap);
void kbuf_reset(struct kbuf *b);
void kbuf_putc(struct kbuf *b, char c);
void kbuf_putn(struct kbuf *b, const char *s, size_t n);
void kbuf_puts(struct kbuf *b, const char *s);
void kbuf_put_u64(struct kbuf *b, uint64_t v);
void kbuf_put_hex(struct kbuf *b, uint64_t v, unsigned digits);
/*
 * Append (s, n) for a human reader on one console line: printable ASCII as is, anything else
 * as \xNN, and at most `max` input bytes followed by "...(<n> bytes)" when longer.
 */
void kbuf_put_printable(struct kbuf *b, const char *s, size_t n, size_t max);
/* Append (s, n) as a JSON string literal with the quotes, escaping the minimum RFC 8259 needs. */
void kbuf_put_json_string(struct kbuf *b, const char *s, size_t n);

#endif
