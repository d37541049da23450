/*
 * ELF notes, page 0, the hypercall page and the boot stack: what both boot modes share.
 *
 * The domain builder reads the notes to decide how to load us. A PV builder enters _start
 * (pv/entry.S, XEN_ELFNOTE_ENTRY) and fills the hypercall page itself (HYPERCALL_PAGE); a PVH
 * builder enters pvh_start (pvh/entry.S, PHYS32_ENTRY) in 32-bit protected mode, and the
 * kernel asks Xen to fill the same page through the MSR that CPUID names. Both move to
 * boot_stack at once, so the stack we run on is part of the image and survives save/restore
 * at a known place.
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
    xen_note XEN_ELFNOTE_PHYS32_ENTRY,    .long pvh_start

/*
 * Page 0 is part of the image only so that nothing else lives there: both modes leave it
 * unmapped (PV unmaps it, PVH's page tables never map it) so a NULL dereference faults instead
 * of reading our own code.
 */
    .section .text.null_page, "ax", @progbits
    .globl null_page
null_page:
    .skip PAGE_SIZE, 0

/* Xen overwrites this page with 128 stubs of 32 bytes (syscall for PV, vmcall or vmmcall for
 * PVH); int3 until then. */
    .section .text.hypercall_page, "ax", @progbits
    .globl hypercall_page
hypercall_page:
    .skip PAGE_SIZE, 0xcc

/*
 * The page under the stack is unmapped at boot (pv_start): an overflow faults there instead of
 * silently overwriting whatever the linker put below (shared info's event bitmaps, once).
 */
    .section .bss.stack, "aw", @nobits
    .p2align 12
    .globl boot_stack_guard
boot_stack_guard:
    .skip PAGE_SIZE
    .globl boot_stack
boot_stack:
    .skip 4 * PAGE_SIZE
    .globl boot_stack_top
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
