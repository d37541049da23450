/*
 * Exception entry stubs, one per vector 0-21, shared by both boot modes, and
 * `exception_entries`, their addresses indexed by vector.
 *
 * A PVH guest takes exceptions through its own IDT and finds the hardware frame on the stack.
 * A 64-bit PV guest gets Xen's bounce frame with %rcx and %r11 pushed below that frame (they
 * were clobbered by Xen's sysret-style return): its trap table enters each stub
 * PV_ENTRY_FIXUP bytes early, where they are popped, so every register holds the value it had
 * at the fault in both modes.
 *
 * None of these return: a test kernel that faults has a bug, so we print everything and crash
 * the domain, which is what a tester watching the domain needs to see.
 */
#include "arch/traps.h"

.macro exception_stub vector, has_error_code
1:  pop %rcx
    pop %r11
2:  .if (2b - 1b) - PV_ENTRY_FIXUP
    .error "the PV fixup must be PV_ENTRY_FIXUP bytes long"
    .endif
    .if \has_error_code == 0
    push $0
    .endif
    push $\vector
    jmp exception_common
    .pushsection .rodata.exception_entries, "a", @progbits
    .quad 2b
    .popsection
.endm

    .section .rodata.exception_entries, "a", @progbits
    .p2align 3
    .globl exception_entries
exception_entries:

    .section .text, "ax", @progbits
    exception_stub  0, 0    /* divide error */
    exception_stub  1, 0    /* debug */
    exception_stub  2, 0    /* NMI (PVH only: a PV guest gets it through a callback) */
    exception_stub  3, 0    /* breakpoint */
    exception_stub  4, 0    /* overflow */
    exception_stub  5, 0    /* bound range */
    exception_stub  6, 0    /* invalid opcode */
    exception_stub  7, 0    /* device not available */
    exception_stub  8, 1    /* double fault (PVH only: Xen keeps it for a PV guest) */
    exception_stub  9, 0    /* coprocessor segment overrun */
    exception_stub 10, 1    /* invalid TSS */
    exception_stub 11, 1    /* segment not present */
    exception_stub 12, 1    /* stack fault */
    exception_stub 13, 1    /* general protection */
    exception_stub 14, 1    /* page fault */
    exception_stub 15, 0    /* spurious interrupt */
    exception_stub 16, 0    /* x87 error */
    exception_stub 17, 1    /* alignment check */
    exception_stub 18, 0    /* machine check */
    exception_stub 19, 0    /* SIMD error */
    exception_stub 20, 0    /* virtualisation exception */
    exception_stub 21, 1    /* control protection */

    .section .rodata.exception_entries, "a", @progbits
    .globl exception_entries_end
exception_entries_end:

    .section .text, "ax", @progbits
    .type exception_common, @function
exception_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    and $-16, %rsp
    cld
    call do_exception
    ud2
    .size exception_common, . - exception_common

    .section .note.GNU-stack, "", @progbits
