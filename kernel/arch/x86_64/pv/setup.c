/*
 * The PV boot mode: first C code after _start, and the mode's side of kernel.h.
 *
 * Everything a PV guest learns comes from start_info, and it speaks in machine frames: the
 * rings are machine frames, shared info is a machine address mapped with update_va_mapping,
 * and a suspend must turn the rings' frames into pseudo-physical ones (and back if cancelled)
 * and hand Xen the start_info frame.
 */
#include "arch/cpu.h"
#include "arch/hypercall.h"
#include "arch/traps.h"
#include "kernel.h"
#include "memory.h"
#include "xen/shared_info.h"

#define PTE_PRESENT 0x001UL
#define PTE_WRITABLE 0x002UL
#define PTE_ACCESSED 0x020UL
#define PTE_DIRTY 0x040UL
#define PTE_KERNEL_RW (PTE_PRESENT | PTE_WRITABLE | PTE_ACCESSED | PTE_DIRTY)

extern char null_page[];
extern char boot_stack_guard[];

static const char *pv_cmdline(void)
{
    return (const char *)xen_start_info->cmd_line;
}

static unsigned long pv_memory_kib(void)
{
    return xen_start_info->nr_pages * (PAGE_SIZE / 1024);
}

static void *pv_store_ring(evtchn_port_t *port)
{
    *port = xen_start_info->store_evtchn;
    return mfn_to_virt(xen_start_info->store_mfn);
}

static void *pv_console_ring(evtchn_port_t *port)
{
    *port = xen_start_info->console.domU.evtchn;
    return mfn_to_virt(xen_start_info->console.domU.mfn);
}

static void map_frame(void *page, unsigned long machine_address)
{
    long rc = hypervisor_update_va_mapping((unsigned long)page,
                                           (machine_address & ~(PAGE_SIZE - 1)) | PTE_KERNEL_RW,
                                           UVMF_INVLPG);
    if (rc != 0) {
        /* Nothing else works without shared info; there is no console yet to say so. */
        struct sched_shutdown crash = {.reason = SHUTDOWN_crash};
        hypervisor_sched_op(SCHEDOP_shutdown, &crash);
    }
}

/* start_info->shared_info is the (possibly new) machine address at boot and in both resumes. */
static void pv_map_shared_info(void *page)
{
    map_frame(page, xen_start_info->shared_info);
}

/*
 * The placeholder goes back to its own frame before a suspend: the toolstack refuses page
 * tables that still point at a frame outside the guest ("Bad mfn for L1").
 */
static void pv_unmap_shared_info(void *page)
{
    map_frame(page, virt_to_mfn(page) << PAGE_SHIFT);
}

static long pv_suspend(void)
{
    /* PROTOCOL.md section 4: the rings' machine frames become pseudo-physical ones. */
    xen_start_info->store_mfn = mfn_to_pfn(xen_start_info->store_mfn);
    xen_start_info->console.domU.mfn = mfn_to_pfn(xen_start_info->console.domU.mfn);
    return hypervisor_suspend(virt_to_mfn(xen_start_info));
}

/* A new domain's toolstack wrote the new MFNs and ports; a cancelled suspend left our PFNs. */
static void pv_cancelled(void)
{
    xen_start_info->store_mfn = pfn_to_mfn(xen_start_info->store_mfn);
    xen_start_info->console.domU.mfn = pfn_to_mfn(xen_start_info->console.domU.mfn);
}

/* The page-fault address Xen saved for us in shared info (a PV guest cannot read %cr2). */
static bool pv_fault_address(unsigned long *address)
{
    if (!shared_info_mapped())
        return false;
    *address = shared_info()->vcpu_info[0].arch.cr2;
    return true;
}

static const struct arch_mode pv_mode = {
    .name = "pv",
    .cmdline = pv_cmdline,
    .memory_kib = pv_memory_kib,
    .store_ring = pv_store_ring,
    .console_ring = pv_console_ring,
    .map_shared_info = pv_map_shared_info,
    .unmap_shared_info = pv_unmap_shared_info,
    .shared_info_ready = memory_publish_p2m,
    .suspend = pv_suspend,
    .cancelled = pv_cancelled,
    .fault_address = pv_fault_address,
    .balloon_range = pv_balloon_range,
    .balloon_give = pv_balloon_give,
    .balloon_took = pv_balloon_took,
};

__attribute__((noreturn)) void pv_start(start_info_t *start_info);

void pv_start(start_info_t *start_info)
{
    arch = &pv_mode;
    memory_init(start_info);
    pv_traps_init();
    /* With page 0 unmapped a NULL dereference faults instead of reading our own image. */
    hypervisor_update_va_mapping((unsigned long)null_page, 0, UVMF_INVLPG);
    /* And with the page under the stack unmapped an overflow faults instead of corrupting. */
    hypervisor_update_va_mapping((unsigned long)boot_stack_guard, 0, UVMF_INVLPG);
    kernel_main();
}
