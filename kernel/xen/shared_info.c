/*
 * Shared info is a Xen-owned frame given by machine address in start_info. We map it over a
 * page-aligned placeholder in our own image. Before a suspend the placeholder goes back to its
 * own frame: the toolstack refuses page tables that still point at a frame outside the guest
 * ("Bad mfn for L1").
 */
#include "xen/shared_info.h"

#include "arch/cpu.h"
#include "arch/hypercall.h"
#include "xen/memory.h"

#define PTE_PRESENT 0x001UL
#define PTE_WRITABLE 0x002UL
#define PTE_ACCESSED 0x020UL
#define PTE_DIRTY 0x040UL
#define PTE_KERNEL_RW (PTE_PRESENT | PTE_WRITABLE | PTE_ACCESSED | PTE_DIRTY)

/* Referenced by the linker script's alignment assertion. */
char shared_info_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE), section(".bss.page_aligned")));

static bool mapped;

struct shared_info *shared_info(void)
{
    return (struct shared_info *)shared_info_page;
}

bool shared_info_mapped(void)
{
    return mapped;
}

static void map_frame(unsigned long machine_address)
{
    long rc = hypervisor_update_va_mapping((unsigned long)shared_info_page,
                                           (machine_address & ~(PAGE_SIZE - 1)) | PTE_KERNEL_RW,
                                           UVMF_INVLPG);
    if (rc != 0) {
        /* Nothing else works without shared info; there is no console yet to say so. */
        struct sched_shutdown crash = {.reason = SHUTDOWN_crash};
        hypervisor_sched_op(SCHEDOP_shutdown, &crash);
    }
}

void shared_info_init(void)
{
    map_frame(xen_start_info->shared_info);
    mapped = true;
    /* We never take event upcalls: we poll. Keep delivery masked so SCHEDOP_poll sleeps. */
    shared_info()->vcpu_info[0].evtchn_upcall_mask = 1;
}

void shared_info_suspend(void)
{
    mapped = false;
    map_frame(virt_to_mfn(shared_info_page) << PAGE_SHIFT);
}

void shared_info_resume(void)
{
    /* start_info->shared_info is the (possibly new) machine address in both resume cases. */
    shared_info_init();
}
