/*
 * The PV entry point: the builder enters here in 64-bit mode with %rsi = start_info (virtual),
 * events masked, its own page tables mapping the image 1:1 from VIRT_BASE 0, and a
 * builder-provided stack somewhere after the image.
 */
    .section .text.entry, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi
    call pv_start
    ud2
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
