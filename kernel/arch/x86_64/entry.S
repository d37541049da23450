/*
 * PV entry point, ELF notes and the hypercall page for x86_64.
 *
 * The domain builder reads the notes to decide how to load us, fills the hypercall page, and
 * enters _start with %rsi = start_info (virtual), events masked and a builder-provided stack
 * somewhere after the image. We move to our own stack at once so the stack we run on is part of
 * the image and survives save/restore at a known place.
 */
#include <xen/elfnote.h>

#define PAGE_SIZE 4096

/* One ELF note named "Xen"; `desc` is the directive that emits the descriptor. */
.macro xen_note type, desc:vararg
    .p2align 2
    .long 2f - 1f               /* namesz */
    .long 4f - 3f               /* descsz */
    .long \type
1:  .asciz "Xen"
2:  .p2align 2
3:  \desc
4:  .p2align 2
.endm

    .section .note.Xen, "a", @note
    xen_note XEN_ELFNOTE_GUEST_OS,        .asciz "xen-test-vm"
    xen_note XEN_ELFNOTE_XEN_VERSION,     .asciz "xen-3.0"
    xen_note XEN_ELFNOTE_LOADER,          .asciz "generic"
    xen_note XEN_ELFNOTE_VIRT_BASE,       .quad 0
    xen_note XEN_ELFNOTE_PADDR_OFFSET,    .quad 0
    xen_note XEN_ELFNOTE_ENTRY,           .quad _start
    xen_note XEN_ELFNOTE_HYPERCALL_PAGE,  .quad hypercall_page
    xen_note XEN_ELFNOTE_SUSPEND_CANCEL,  .long 1

/*
 * Page 0 is part of the image only so that nothing else lives there: arch_start() unmaps it so a
 * NULL dereference faults instead of reading our own code.
 */
    .section .text.null_page, "ax", @progbits
    .globl null_page
null_page:
    .skip PAGE_SIZE, 0

/* Xen overwrites this page with 128 stubs of 32 bytes; int3 until then. */
    .section .text.hypercall_page, "ax", @progbits
    .globl hypercall_page
hypercall_page:
    .skip PAGE_SIZE, 0xcc

    .section .text.entry, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi
    call arch_start
    ud2
    .size _start, . - _start

    .section .bss.stack, "aw", @nobits
    .p2align 12
    .globl boot_stack
boot_stack:
    .skip 4 * PAGE_SIZE
    .globl boot_stack_top
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
