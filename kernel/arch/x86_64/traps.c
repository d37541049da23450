/*
 * A fault in the test kernel is a bug in it: say exactly what happened on the console, flush it,
 * and crash the domain so the toolstack (and on_crash="preserve") shows it. The same in both
 * boot modes; only how the handlers are registered (pv/traps.c, pvh/traps.c) and where the
 * page-fault address comes from differ.
 */
#include <stdint.h>

#include "arch/hypercall.h"
#include "arch/traps.h"
#include "kernel.h"
#include "xen/console.h"

struct exception_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

#define X86_EXC_PF 14

static const char *const exception_names[] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
    "invalid opcode", "device not available", "double fault", "coprocessor segment overrun",
    "invalid TSS", "segment not present", "stack fault", "general protection fault",
    "page fault", "spurious interrupt", "x87 error", "alignment check", "machine check",
    "SIMD error", "virtualisation exception", "control protection",
};

__attribute__((noreturn)) static void crash_domain(void)
{
    struct sched_shutdown crash = {.reason = SHUTDOWN_crash};
    for (;;)
        hypervisor_sched_op(SCHEDOP_shutdown, &crash);
}

__attribute__((noreturn)) void do_exception(const struct exception_frame *f);

void do_exception(const struct exception_frame *f)
{
    static bool in_fault;

    if (in_fault || !console_attached())
        crash_domain();
    in_fault = true;

    const char *name = f->vector < sizeof(exception_names) / sizeof(exception_names[0])
                           ? exception_names[f->vector]
                           : "unknown exception";
    console_printf("FATAL: %s (vector %lu, error code 0x%lx) at rip 0x%016lx", name,
                   (unsigned long)f->vector, (unsigned long)f->error_code, (unsigned long)f->rip);
    unsigned long address;
    if (f->vector == X86_EXC_PF && arch->fault_address(&address))
        console_printf("FATAL: faulting address (cr2) 0x%016lx", address);
    console_printf("rax %016lx rbx %016lx rcx %016lx rdx %016lx", (unsigned long)f->rax,
                   (unsigned long)f->rbx, (unsigned long)f->rcx, (unsigned long)f->rdx);
    console_printf("rsi %016lx rdi %016lx rbp %016lx rsp %016lx", (unsigned long)f->rsi,
                   (unsigned long)f->rdi, (unsigned long)f->rbp, (unsigned long)f->rsp);
    console_printf("r8  %016lx r9  %016lx r10 %016lx r11 %016lx", (unsigned long)f->r8,
                   (unsigned long)f->r9, (unsigned long)f->r10, (unsigned long)f->r11);
    console_printf("r12 %016lx r13 %016lx r14 %016lx r15 %016lx", (unsigned long)f->r12,
                   (unsigned long)f->r13, (unsigned long)f->r14, (unsigned long)f->r15);
    /* PV: Xen keeps the saved event mask in the upper half of the cs slot. */
    console_printf("cs %04lx ss %04lx rflags %08lx; crashing the domain",
                   (unsigned long)(f->cs & 0xffff), (unsigned long)(f->ss & 0xffff),
                   (unsigned long)f->rflags);
    console_flush();
    crash_domain();
}
