/*
 * Section 9: pages given back to Xen and taken again, through the boot mode's view of its
 * frames (kernel.h). The balloon's pages are [high - out, high): it gives back from the top
 * down and takes back from the bottom up, so a partial batch keeps that range whole.
 */
#ifndef XTV_XEN_BALLOON_H
#define XTV_XEN_BALLOON_H

#include <stdbool.h>

/* Pages in one hypercall; a change larger than this takes several. */
#define BALLOON_BATCH 512

/* Give back (give) or take again up to n pages (at most BALLOON_BATCH) next to `top`, the
 * lowest page out (or high). Returns how many pages it did: fewer when Xen refused the rest. */
unsigned long balloon_exchange(bool give, unsigned long top, unsigned long n);

#endif
