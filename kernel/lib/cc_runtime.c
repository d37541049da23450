/*
 * The four functions gcc requires of a freestanding environment: it may emit calls to them for
 * struct copies and initialisers even with -ffreestanding. Kernel build only (on the host, libc
 * provides them). The optimize attribute stops gcc from recognising these very loops as
 * memset/memcpy and compiling them into calls to themselves.
 */
#include <stddef.h>

#define NO_LOOP_CALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))

NO_LOOP_CALLS void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    while (n--)
        *d++ = *s++;
    return dst;
}

NO_LOOP_CALLS void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

NO_LOOP_CALLS void *memset(void *dst, int byte, size_t n)
{
    unsigned char *d = dst;

    while (n--)
        *d++ = (unsigned char)byte;
    return dst;
}

NO_LOOP_CALLS int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;

    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}
