/*
 * Shared info is a Xen-owned frame that the boot mode makes appear over a page-aligned
 * placeholder in our own image (kernel.h: map_shared_info). Before a suspend the mode gives
 * the placeholder back its own frame if it must (PV), and after every resume maps it again.
 */
#include "xen/shared_info.h"

#include "arch/cpu.h"
#include "kernel.h"

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

void shared_info_init(void)
{
    arch->map_shared_info(shared_info_page);
    mapped = true;
    /* We never take event upcalls: we poll. Keep delivery masked so SCHEDOP_poll sleeps. */
    shared_info()->vcpu_info[0].evtchn_upcall_mask = 1;
}

void shared_info_suspend(void)
{
    mapped = false;
    arch->unmap_shared_info(shared_info_page);
}

void shared_info_resume(void)
{
    shared_info_init();
}
