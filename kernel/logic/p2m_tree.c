/* The p2m tree's layout and contents: see p2m_tree.h. */
#include "p2m_tree.h"

static unsigned long pages_for(unsigned long entries)
{
    return entries / P2M_PER_PAGE + (entries % P2M_PER_PAGE != 0);
}

bool p2m_tree_layout(unsigned long nr_pfns, struct p2m_tree *tree)
{
    bool fits = nr_pfns <= P2M_MAX_PFNS;

    tree->nr_pfns = fits ? nr_pfns : P2M_MAX_PFNS;
    tree->p2m_pages = pages_for(tree->nr_pfns);
    tree->list_pages = pages_for(tree->p2m_pages);
    return fits;
}

void p2m_tree_fill_list(const struct p2m_tree *tree, unsigned long list,
                        unsigned long (*p2m_page_mfn)(unsigned long page, void *ctx), void *ctx,
                        unsigned long out[P2M_PER_PAGE])
{
    for (unsigned long i = 0; i < P2M_PER_PAGE; i++) {
        unsigned long page = list * P2M_PER_PAGE + i;
        out[i] = page < tree->p2m_pages ? p2m_page_mfn(page, ctx) : 0;
    }
}

void p2m_tree_fill_top(const struct p2m_tree *tree, const unsigned long *list_mfns,
                       unsigned long out[P2M_PER_PAGE])
{
    for (unsigned long i = 0; i < P2M_PER_PAGE; i++)
        out[i] = i < tree->list_pages ? list_mfns[i] : 0;
}
