/*
 * Hypercalls through the hypercall page Xen filled in: stub n lives at hypercall_page + n * 32.
 * Arguments go in rdi, rsi, rdx, r10, r8; Xen may clobber the argument registers (debug builds
 * poison them), and the PV stubs use syscall, which clobbers rcx and r11 (the PVH stubs use
 * vmcall or vmmcall: the same call works in both modes).
 */
#ifndef XTV_ARCH_HYPERCALL_H
#define XTV_ARCH_HYPERCALL_H

#include <stdint.h>

#include "xen/xen_headers.h"

extern char hypercall_page[];

static inline long hypercall3(unsigned int nr, unsigned long a1, unsigned long a2,
                              unsigned long a3)
{
    register unsigned long rdi __asm__("rdi") = a1;
    register unsigned long rsi __asm__("rsi") = a2;
    register unsigned long rdx __asm__("rdx") = a3;
    long result;

    __asm__ __volatile__("call *%[stub]"
                         : "=a"(result), "+r"(rdi), "+r"(rsi), "+r"(rdx)
                         : [stub] "r"(hypercall_page + nr * 32)
                         : "rcx", "r8", "r10", "r11", "memory");
    return result;
}

static inline long hypercall2(unsigned int nr, unsigned long a1, unsigned long a2)
{
    return hypercall3(nr, a1, a2, 0);
}

static inline long hypercall1(unsigned int nr, unsigned long a1)
{
    return hypercall3(nr, a1, 0, 0);
}

static inline long hypervisor_sched_op(int cmd, void *arg)
{
    return hypercall2(__HYPERVISOR_sched_op, (unsigned long)cmd, (unsigned long)arg);
}

static inline long hypervisor_event_channel_op(int cmd, void *arg)
{
    return hypercall2(__HYPERVISOR_event_channel_op, (unsigned long)cmd, (unsigned long)arg);
}

static inline long hypervisor_memory_op(int cmd, void *arg)
{
    return hypercall2(__HYPERVISOR_memory_op, (unsigned long)cmd, (unsigned long)arg);
}

static inline long hypervisor_hvm_op(int cmd, void *arg)
{
    return hypercall2(__HYPERVISOR_hvm_op, (unsigned long)cmd, (unsigned long)arg);
}

static inline long hypervisor_update_va_mapping(unsigned long va, uint64_t pte,
                                                unsigned long flags)
{
    return hypercall3(__HYPERVISOR_update_va_mapping, va, pte, flags);
}

static inline long hypervisor_set_trap_table(const struct trap_info *table)
{
    return hypercall1(__HYPERVISOR_set_trap_table, (unsigned long)table);
}

/*
 * SCHEDOP_shutdown with reason suspend: a PV guest passes its start_info MFN in the third
 * argument so the toolstack can find and rewrite it (PVH: 0, unused). Returns 0 in a new
 * domain, 1 when cancelled.
 */
static inline long hypervisor_suspend(unsigned long start_info_mfn)
{
    struct sched_shutdown shutdown = {.reason = SHUTDOWN_suspend};
    return hypercall3(__HYPERVISOR_sched_op, SCHEDOP_shutdown, (unsigned long)&shutdown,
                      start_info_mfn);
}

#endif
