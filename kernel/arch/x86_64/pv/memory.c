/*
 * The toolstack saves a PV guest by walking its p2m through shared_info->arch: max_pfn and a
 * three-level tree (a page of MFNs of pages of MFNs of the p2m pages, logic/p2m_tree.h). Xen
 * does not build it for us, and a restore gives every page a new MFN, so the tree is rebuilt
 * after each resume. The p2m array itself (start_info->mfn_list) is rewritten by the restore.
 */
#include "memory.h"

#include "arch/cpu.h"
#include "arch/hypercall.h"
#include "logic/p2m_tree.h"
#include "xen/console.h"
#include "xen/shared_info.h"

#define PTE_KERNEL_RW 0x063UL /* present, writable, accessed, dirty */
/* xen.h's start-of-day layout: after the page tables come the boot stack and 512 KiB of
 * padding, and nothing of ours lives beyond (no allocator, no initrd). */
#define BOOT_STACK_AND_PADDING_PAGES (1 + 512 * 1024 / PAGE_SIZE)

start_info_t *xen_start_info;

static unsigned long p2m_frame_list_list[P2M_PER_PAGE]
    __attribute__((aligned(PAGE_SIZE), section(".bss.page_aligned")));
/* A window onto the frame-list pages, which live in the last pages of memory. */
static unsigned long p2m_window[P2M_PER_PAGE]
    __attribute__((aligned(PAGE_SIZE), section(".bss.page_aligned")));
static unsigned long list_mfns[P2M_MAX_LIST_PAGES];

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

/* The first page after the boot structures (start_info layout, xen.h ~line 790-815). */
static unsigned long boot_end(void)
{
    return virt_to_pfn((const void *)xen_start_info->pt_base) + xen_start_info->nr_pt_frames +
           BOOT_STACK_AND_PADDING_PAGES;
}

/*
 * Section 9: the balloon takes pages between the boot structures and the p2m frame lists at
 * the top of memory (memory_publish_p2m), which a save needs.
 */
void pv_balloon_range(unsigned long *low, unsigned long *high)
{
    struct p2m_tree tree;

    p2m_tree_layout(xen_start_info->nr_pages, &tree);
    *low = boot_end();
    *high = xen_start_info->nr_pages - tree.list_pages;
}

/*
 * A page to give back: the builder's mapping of the boot region runs to a 4 MiB boundary
 * (xen.h ~line 794), so pages up to there are still mapped and must not be; then its p2m
 * entry is marked invalid, as Linux's balloon does (__set_phys_to_machine INVALID_P2M_ENTRY):
 * a save skips such a page as ballooned (libxc xc_sr_save.c write_batch, "Likely a ballooned
 * page") and a restore leaves it out.
 */
unsigned long pv_balloon_give(unsigned long pfn)
{
    unsigned long *p2m = (unsigned long *)xen_start_info->mfn_list;
    unsigned long mfn = p2m[pfn];

    if (pfn < ((boot_end() + 1023) & ~1023UL))
        hypervisor_update_va_mapping((unsigned long)pfn_to_virt(pfn), 0, UVMF_INVLPG);
    p2m[pfn] = ~0UL;
    return mfn;
}

/* XENMEM_populate_physmap wrote the new page's MFN (memory.h) and its M2P entry. */
void pv_balloon_took(unsigned long pfn, unsigned long mfn)
{
    ((unsigned long *)xen_start_info->mfn_list)[pfn] = mfn;
}

void memory_init(start_info_t *start_info)
{
    xen_start_info = start_info;
}

static unsigned long p2m_page_mfn(unsigned long page, void *p2m)
{
    return virt_to_mfn((const char *)p2m + page * PAGE_SIZE);
}

static bool show_in_window(unsigned long mfn)
{
    return hypervisor_update_va_mapping((unsigned long)p2m_window,
                                        (mfn << PAGE_SHIFT) | PTE_KERNEL_RW, UVMF_INVLPG) == 0;
}

/*
 * The frame lists take the last list_pages pages of memory (one per 1 GiB of guest), so the
 * image stays the same size whatever the guest's memory, up to the 512 GiB the tree covers.
 */
void memory_publish_p2m(void)
{
    struct p2m_tree tree;
    unsigned long nr_pages = xen_start_info->nr_pages;

    if (!p2m_tree_layout(nr_pages, &tree))
        console_printf("warning: %lu pages exceed the p2m tree; save covers %lu", nr_pages,
                       tree.nr_pfns);
    unsigned long first = nr_pages - tree.list_pages;
    if (tree.list_pages > nr_pages || first < boot_end()) {
        console_printf("warning: no free pages for %lu p2m frame lists; save will fail",
                       tree.list_pages);
        return;
    }
    for (unsigned long list = 0; list < tree.list_pages; list++) {
        list_mfns[list] = pfn_to_mfn(first + list);
        if (!show_in_window(list_mfns[list])) {
            console_printf("warning: cannot map p2m frame list %lu; save will fail", list);
            break;
        }
        p2m_tree_fill_list(&tree, list, p2m_page_mfn, (void *)xen_start_info->mfn_list,
                           p2m_window);
    }
    /* The window's own frame again: a save refuses page tables pointing outside the guest. */
    show_in_window(virt_to_mfn(p2m_window));
    p2m_tree_fill_top(&tree, list_mfns, p2m_frame_list_list);

    struct shared_info *shared = shared_info();
    shared->arch.max_pfn = tree.nr_pfns;
    wmb();
    shared->arch.pfn_to_mfn_frame_list_list = virt_to_mfn(p2m_frame_list_list);
}
