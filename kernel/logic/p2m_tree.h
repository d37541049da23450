/*
 * The three-level p2m tree a PV guest publishes for save and migration: shared_info->arch
 * points at one page (the frame-list list) of MFNs of frame-list pages, each holding MFNs of
 * up to 512 pages of the p2m array (start_info->mfn_list), which holds one MFN per PFN.
 *
 * Pure arithmetic and filling, so the layouts of guests far larger than the lab can boot
 * (6 GiB, 64 GiB, the 512 GiB the tree can describe at most) are checked on the host.
 */
#ifndef XTV_P2M_TREE_H
#define XTV_P2M_TREE_H

#include <stdbool.h>
#include <stddef.h>

#define P2M_PER_PAGE 512UL /* unsigned longs in a 4 KiB page */
#define P2M_MAX_LIST_PAGES P2M_PER_PAGE
/* 512 frame lists of 512 p2m pages of 512 PFNs: 2^27 pages, 512 GiB. */
#define P2M_MAX_PFNS (P2M_PER_PAGE * P2M_PER_PAGE * P2M_PER_PAGE)

struct p2m_tree {
    unsigned long nr_pfns;    /* what the tree covers (max_pfn) */
    unsigned long p2m_pages;  /* pages of the p2m array */
    unsigned long list_pages; /* frame-list pages */
};

/* The tree for nr_pfns; false (and the largest tree) when nr_pfns is beyond P2M_MAX_PFNS. */
bool p2m_tree_layout(unsigned long nr_pfns, struct p2m_tree *tree);

/*
 * Fill frame-list page `list`: entry i is the MFN of p2m page list * 512 + i, and 0 past the
 * last p2m page. p2m_page_mfn(page, ctx) gives the MFN of the page'th page of the p2m array.
 */
void p2m_tree_fill_list(const struct p2m_tree *tree, unsigned long list,
                        unsigned long (*p2m_page_mfn)(unsigned long page, void *ctx), void *ctx,
                        unsigned long out[P2M_PER_PAGE]);

/* Fill the frame-list list: entry i is list_mfns[i] for each frame-list page, 0 after. */
void p2m_tree_fill_top(const struct p2m_tree *tree, const unsigned long *list_mfns,
                       unsigned long out[P2M_PER_PAGE]);

#endif
