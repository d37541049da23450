/*
 * The PVH boot mode: first C code after pvh_start, and the mode's side of kernel.h.
 *
 * A PVH guest is an HVM guest without emulated devices: it finds Xen through CPUID, asks for
 * the hypercall page through an MSR, takes exceptions through its own IDT, places shared info
 * in its own physical memory with XENMEM_add_to_physmap, and reads the xenstore and console
 * rings (guest frame numbers) and their ports from HVM parameters. Physical = virtual
 * (pvh/entry.S), and there is no frame-number conversion around a suspend.
 */
#include <stdint.h>

#include "arch/cpu.h"
#include "arch/hypercall.h"
#include "arch/traps.h"
#include "kernel.h"
#include "xen/xen_headers.h"

#include <xen/arch-x86/hvm/start_info.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>

#define CPUID_XEN_FIRST 0x40000000u
#define CPUID_XEN_LAST 0x40010000u
#define CPUID_XEN_STEP 0x100u
/* "XenVMMXenVMM" in ebx, ecx, edx. */
#define XEN_SIGNATURE_EBX 0x566e6558u
#define XEN_SIGNATURE_ECX 0x65584d4du
#define XEN_SIGNATURE_EDX 0x4d4d566eu
#define E820_RAM 1
/*
 * Where Xen would deliver event upcalls, as Linux's HYPERVISOR_CALLBACK_VECTOR. Interrupts
 * stay disabled for good (we poll), so it is never taken; the parameter only has to be set so
 * that a cancelled suspend returns 1 (libxc's xc_domain_resume changes the return value only
 * for HVM guests with a callback).
 */
#define UPCALL_VECTOR 0xf3

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
};

#define GDT_CODE64 0x08
#define GDT_TSS 0x18
#define IDT_INTERRUPT_GATE 0x8e /* present, DPL 0, 64-bit interrupt gate */
#define X86_EXC_DF 8
#define DOUBLE_FAULT_IST 1
#define TSS_AVAILABLE_64 0x89 /* present, DPL 0, available 64-bit TSS */

struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

extern char hypercall_page[];
extern char boot_stack_guard[];
extern uint64_t pvh_pt[];

static const struct hvm_start_info *start_info;
static struct idt_gate idt[EXCEPTION_VECTORS];
/* The GDT of pvh/entry.S again, plus a TSS: only for the double fault's own stack. */
static uint64_t gdt[5];
static struct tss64 tss;
static char double_fault_stack[4096] __attribute__((aligned(16)));

static void cpuid(uint32_t leaf, uint32_t *eax, uint32_t *ebx, uint32_t *ecx, uint32_t *edx)
{
    __asm__ __volatile__("cpuid" : "=a"(*eax), "=b"(*ebx), "=c"(*ecx), "=d"(*edx) : "a"(leaf), "c"(0));
}

static void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ __volatile__("wrmsr" ::"c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32))
                         : "memory");
}

/*
 * Xen's CPUID leaves start at 0x40000000, or 0x100 further up when it also shows Viridian's;
 * leaf base + 2 names the MSR that fills a hypercall page. Without Xen nothing can be said to
 * anyone: the ud2 triple-faults the domain.
 */
static void hypercall_page_init(void)
{
    for (uint32_t base = CPUID_XEN_FIRST; base < CPUID_XEN_LAST; base += CPUID_XEN_STEP) {
        uint32_t eax, ebx, ecx, edx;
        cpuid(base, &eax, &ebx, &ecx, &edx);
        if (ebx != XEN_SIGNATURE_EBX || ecx != XEN_SIGNATURE_ECX || edx != XEN_SIGNATURE_EDX ||
            eax < base + 2)
            continue;
        cpuid(base + 2, &eax, &ebx, &ecx, &edx);
        wrmsr(ebx, (uint64_t)(unsigned long)hypercall_page);
        return;
    }
    __asm__ __volatile__("ud2");
}

/*
 * A stack overflow runs into the guard page; delivering that page fault needs the same stack,
 * so the CPU raises a double fault, which gets a stack of its own (IST) and can still report
 * and crash the domain. Without one it would triple-fault, which Xen turns into a reboot.
 */
static void tss_init(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) descriptor = {sizeof(gdt) - 1, (uint64_t)(unsigned long)gdt};
    uint64_t base = (uint64_t)(unsigned long)&tss;

    gdt[1] = 0x00af9b000000ffffULL;
    gdt[2] = 0x00cf93000000ffffULL;
    gdt[3] = (sizeof(tss) - 1) | ((base & 0xffffff) << 16) | ((uint64_t)TSS_AVAILABLE_64 << 40) |
             ((base >> 24) & 0xff) << 56;
    gdt[4] = base >> 32;
    tss.ist[DOUBLE_FAULT_IST - 1] =
        (uint64_t)(unsigned long)(double_fault_stack + sizeof(double_fault_stack));
    tss.iomap_base = sizeof(tss);
    __asm__ __volatile__("lgdt %0; ltr %w1" ::"m"(descriptor), "r"(GDT_TSS) : "memory");
}

/* The page under the boot stack, unmapped as in PV (pvh/entry.S mapped it). */
static void unmap_stack_guard(void)
{
    unsigned long guard = (unsigned long)boot_stack_guard;
    pvh_pt[guard >> PAGE_SHIFT] = 0;
    __asm__ __volatile__("invlpg (%0)" ::"r"(guard) : "memory");
}

static void idt_init(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) descriptor = {sizeof(idt) - 1, (uint64_t)(unsigned long)idt};

    for (unsigned int vector = 0; vector < EXCEPTION_VECTORS; vector++) {
        unsigned long entry = exception_entries[vector];
        idt[vector] = (struct idt_gate){
            .offset_low = (uint16_t)entry,
            .selector = GDT_CODE64,
            .ist = vector == X86_EXC_DF ? DOUBLE_FAULT_IST : 0,
            .type_attr = IDT_INTERRUPT_GATE,
            .offset_mid = (uint16_t)(entry >> 16),
            .offset_high = (uint32_t)(entry >> 32),
        };
    }
    __asm__ __volatile__("lidt %0" ::"m"(descriptor));
}

static uint64_t hvm_param(uint32_t index)
{
    struct xen_hvm_param param = {.domid = DOMID_SELF, .index = index};
    if (hypervisor_hvm_op(HVMOP_get_param, &param) != 0)
        return 0;
    return param.value;
}

static const char *pvh_cmdline(void)
{
    return start_info->cmdline_paddr ? (const char *)(unsigned long)start_info->cmdline_paddr
                                     : "";
}

/* The RAM the memory map gives us (version 1 and later carry one). */
static unsigned long pvh_memory_kib(void)
{
    const struct hvm_memmap_table_entry *map =
        (const void *)(unsigned long)start_info->memmap_paddr;
    uint64_t bytes = 0;

    if (start_info->version < 1)
        return 0;
    for (uint32_t i = 0; i < start_info->memmap_entries; i++)
        if (map[i].type == E820_RAM)
            bytes += map[i].size;
    return (unsigned long)(bytes / 1024);
}

/* The first page above what the builder placed after the image (start_info, memory map,
 * command line), and at least 2 MiB: the image's own page tables map only that far. */
static unsigned long above(unsigned long low, uint64_t paddr)
{
    unsigned long pfn = (unsigned long)(paddr >> PAGE_SHIFT) + 1;

    return pfn > low ? pfn : low;
}

/* Section 9: the top of the last RAM range, which holds nothing of ours. */
static void pvh_balloon_range(unsigned long *low, unsigned long *high)
{
    const struct hvm_memmap_table_entry *map =
        (const void *)(unsigned long)start_info->memmap_paddr;
    unsigned long l = above(above(above(0x200000 >> PAGE_SHIFT, start_info->memmap_paddr),
                                  start_info->cmdline_paddr),
                            (unsigned long)start_info);

    /* libxl lists the ranges in ascending order: the last RAM range is the top one, and it
     * reaches above 2 MiB in any guest (one page of it may stay unused: cheaper than exact). */
    *low = *high = 0;
    for (uint32_t i = 0; start_info->version >= 1 && i < start_info->memmap_entries; i++) {
        if (map[i].type != E820_RAM)
            continue;
        *low = above(l, map[i].addr);
        *high = (unsigned long)((map[i].addr + map[i].size) >> PAGE_SHIFT);
    }
}

/* A translated guest names its own frames: XENMEM_* take the page's number itself. */
static unsigned long pvh_balloon_give(unsigned long pfn)
{
    return pfn;
}

static void pvh_balloon_took(unsigned long pfn, unsigned long frame)
{
    (void)pfn;
    (void)frame;
}

static void *pvh_store_ring(evtchn_port_t *port)
{
    *port = (evtchn_port_t)hvm_param(HVM_PARAM_STORE_EVTCHN);
    return (void *)(unsigned long)(hvm_param(HVM_PARAM_STORE_PFN) << PAGE_SHIFT);
}

static void *pvh_console_ring(evtchn_port_t *port)
{
    *port = (evtchn_port_t)hvm_param(HVM_PARAM_CONSOLE_EVTCHN);
    return (void *)(unsigned long)(hvm_param(HVM_PARAM_CONSOLE_PFN) << PAGE_SHIFT);
}

/*
 * Xen's shared info frame takes the place of the placeholder's own page in our physical
 * memory. A restore brings back a plain page there, so this runs again after every resume.
 */
static void pvh_map_shared_info(void *page)
{
    struct xen_add_to_physmap map = {
        .domid = DOMID_SELF,
        .space = XENMAPSPACE_shared_info,
        .idx = 0,
        .gpfn = (unsigned long)page >> PAGE_SHIFT,
    };
    if (hypervisor_memory_op(XENMEM_add_to_physmap, &map) != 0) {
        struct sched_shutdown crash = {.reason = SHUTDOWN_crash};
        hypervisor_sched_op(SCHEDOP_shutdown, &crash);
    }
}

/* The toolstack saves an HVM guest's memory as it is: nothing to give back. */
static void pvh_unmap_shared_info(void *page)
{
    (void)page;
}

/* Not kept by save/restore (Linux sets it again on resume too). */
static void pvh_shared_info_ready(void)
{
    struct xen_hvm_param param = {
        .domid = DOMID_SELF,
        .index = HVM_PARAM_CALLBACK_IRQ,
        .value = ((uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | UPCALL_VECTOR,
    };
    hypervisor_hvm_op(HVMOP_set_param, &param);
}

static long pvh_suspend(void)
{
    return hypervisor_suspend(0);
}

static void pvh_cancelled(void)
{
}

static bool pvh_fault_address(unsigned long *address)
{
    __asm__ __volatile__("mov %%cr2, %0" : "=r"(*address));
    return true;
}

static const struct arch_mode pvh_mode = {
    .name = "pvh",
    .hvm = true,
    .cmdline = pvh_cmdline,
    .memory_kib = pvh_memory_kib,
    .store_ring = pvh_store_ring,
    .console_ring = pvh_console_ring,
    .map_shared_info = pvh_map_shared_info,
    .unmap_shared_info = pvh_unmap_shared_info,
    .shared_info_ready = pvh_shared_info_ready,
    .suspend = pvh_suspend,
    .cancelled = pvh_cancelled,
    .fault_address = pvh_fault_address,
    .balloon_range = pvh_balloon_range,
    .balloon_give = pvh_balloon_give,
    .balloon_took = pvh_balloon_took,
};

__attribute__((noreturn)) void pvh_start_c(unsigned long start_info_paddr);

void pvh_start_c(unsigned long start_info_paddr)
{
    arch = &pvh_mode;
    start_info = (const struct hvm_start_info *)start_info_paddr;
    hypercall_page_init();
    tss_init();
    idt_init();
    unmap_stack_guard();
    kernel_main();
}
