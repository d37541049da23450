/*
 * Exception entry stubs. A 64-bit PV guest gets Xen's bounce frame with %rcx and %r11 pushed
 * below the hardware-style frame (they were clobbered by Xen's sysret-style return): pop them
 * first so every register holds the value it had at the fault.
 *
 * None of these return: a test kernel that faults has a bug, so we print everything and crash
 * the domain, which is what a tester watching the domain needs to see.
 */

.macro exception_stub name, vector, has_error_code
    .globl \name
    .type \name, @function
\name:
    pop %rcx
    pop %r11
    .if \has_error_code == 0
    push $0
    .endif
    push $\vector
    jmp exception_common
    .size \name, . - \name
.endm

    .section .text, "ax", @progbits
    exception_stub entry_divide_error,        0, 0
    exception_stub entry_debug,               1, 0
    exception_stub entry_int3,                3, 0
    exception_stub entry_overflow,            4, 0
    exception_stub entry_bounds,              5, 0
    exception_stub entry_invalid_op,          6, 0
    exception_stub entry_device_not_available, 7, 0
    exception_stub entry_coprocessor_segment, 9, 0
    exception_stub entry_invalid_tss,        10, 1
    exception_stub entry_segment_not_present, 11, 1
    exception_stub entry_stack_segment,      12, 1
    exception_stub entry_general_protection, 13, 1
    exception_stub entry_page_fault,         14, 1
    exception_stub entry_spurious_interrupt, 15, 0
    exception_stub entry_coprocessor_error,  16, 0
    exception_stub entry_alignment_check,    17, 1
    exception_stub entry_machine_check,      18, 0
    exception_stub entry_simd_error,         19, 0
    exception_stub entry_virtualisation,     20, 0
    exception_stub entry_control_protection, 21, 1

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
