/*
 * The toolstack saves a PV guest by walking its p2m through shared_info->arch: max_pfn and a
 * three-level tree (a page of MFNs of pages of MFNs of the p2m pages). Xen does not build it
 * for us, and a restore gives every page a new MFN, so the tree is rebuilt after each resume
 * into a new domain. The p2m array itself (start_info->mfn_list) is rewritten by the restore.
 */
#include "xen/memory.h"

#include "arch/cpu.h"
#include "xen/console.h"
#include "xen/shared_info.h"

#define ENTRIES_PER_PAGE (PAGE_SIZE / sizeof(unsigned long))
/* 4 frame-list pages cover 4 * 512 * 512 pages = 4 GiB, far more than a test guest needs. */
#define MAX_FRAME_LIST_PAGES 4

start_info_t *xen_start_info;

static unsigned long p2m_frame_list_list[ENTRIES_PER_PAGE]
    __attribute__((aligned(PAGE_SIZE), section(".bss.page_aligned")));
static unsigned long p2m_frame_lists[MAX_FRAME_LIST_PAGES][ENTRIES_PER_PAGE]
    __attribute__((aligned(PAGE_SIZE), section(".bss.page_aligned")));

unsigned long pfn_to_mfn(unsigned long pfn)
{
    return ((const unsigned long *)xen_start_info->mfn_list)[pfn];
}

unsigned long mfn_to_pfn(unsigned long mfn)
{
    /* Xen's read-only machine-to-phys table, mapped into every PV guest. */
    return ((const unsigned long *)MACH2PHYS_VIRT_START)[mfn];
}

unsigned long virt_to_mfn(const void *va)
{
    return pfn_to_mfn(virt_to_pfn(va));
}

void *mfn_to_virt(unsigned long mfn)
{
    return pfn_to_virt(mfn_to_pfn(mfn));
}

void memory_init(start_info_t *start_info)
{
    xen_start_info = start_info;
}

void memory_publish_p2m(void)
{
    unsigned long nr_pfns = xen_start_info->nr_pages;
    unsigned long p2m_pages = (nr_pfns + ENTRIES_PER_PAGE - 1) / ENTRIES_PER_PAGE;
    unsigned long list_pages = (p2m_pages + ENTRIES_PER_PAGE - 1) / ENTRIES_PER_PAGE;
    const char *p2m = (const char *)xen_start_info->mfn_list;

    if (list_pages > MAX_FRAME_LIST_PAGES) {
        console_printf("warning: %lu pages exceed the p2m frame list; save covers %lu",
                       nr_pfns, (unsigned long)(MAX_FRAME_LIST_PAGES * ENTRIES_PER_PAGE *
                                                ENTRIES_PER_PAGE));
        list_pages = MAX_FRAME_LIST_PAGES;
        p2m_pages = list_pages * ENTRIES_PER_PAGE;
        nr_pfns = p2m_pages * ENTRIES_PER_PAGE;
    }

    for (unsigned long i = 0; i < ENTRIES_PER_PAGE; i++)
        p2m_frame_list_list[i] = 0;
    for (unsigned long page = 0; page < p2m_pages; page++)
        p2m_frame_lists[page / ENTRIES_PER_PAGE][page % ENTRIES_PER_PAGE] =
            virt_to_mfn(p2m + page * PAGE_SIZE);
    for (unsigned long list = 0; list < list_pages; list++)
        p2m_frame_list_list[list] = virt_to_mfn(p2m_frame_lists[list]);

    struct shared_info *shared = shared_info();
    shared->arch.max_pfn = nr_pfns;
    wmb();
    shared->arch.pfn_to_mfn_frame_list_list = virt_to_mfn(p2m_frame_list_list);
}

void memory_resume(bool new_domain)
{
    /* A cancelled suspend keeps every MFN; only shared info was remapped, and it still holds
     * the tree, but publishing again is cheap and keeps one code path. */
    (void)new_domain;
    memory_publish_p2m();
}
