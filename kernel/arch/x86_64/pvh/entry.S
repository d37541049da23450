/*
 * The PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY). Xen starts the vCPU here in 32-bit
 * protected mode with paging off, flat %cs/%ds/%ss, %ebx = physical address of
 * struct hvm_start_info, and no usable GDT or IDT of ours (docs/misc/pvh.pandoc).
 *
 * We build 1:1 page tables for the low 4 GiB (where the image, hvm_start_info and Xen's
 * special pages with the xenstore and console rings all live), load our own GDT, enter long
 * mode and continue in 64-bit C at pvh_start_c with the same physical = virtual layout a PV
 * boot has. The first 2 MiB are mapped with 4 KiB pages so that page 0 stays unmapped.
 */
#define PAGE_SIZE 4096
#define PTE_PRESENT 0x001
#define PTE_WRITABLE 0x002
#define PTE_LARGE 0x080
#define PTE_TABLE (PTE_PRESENT | PTE_WRITABLE)
#define CR0_PE 0x00000001
#define CR0_WP 0x00010000
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100
#define GDT_CODE64 0x08
#define GDT_DATA 0x10
/* Page directories covering 4 GiB with 2 MiB pages. */
#define PVH_PDS 4

    .section .text.pvh_entry, "ax", @progbits
    .code32
    .globl pvh_start
    .type pvh_start, @function
pvh_start:
    cld
    cli
    mov %ebx, %esi

    /* 2048 large pages: 0 .. 4 GiB. The loader zeroed bss, so the upper halves are 0. */
    mov $pvh_pds, %edi
    mov $(PTE_TABLE | PTE_LARGE), %eax
    mov $(PVH_PDS * 512), %ecx
1:  mov %eax, (%edi)
    add $8, %edi
    add $0x200000, %eax
    loop 1b

    /* The first 2 MiB again in 4 KiB pages, all but page 0. */
    mov $(pvh_pt + 8), %edi
    mov $(PAGE_SIZE | PTE_TABLE), %eax
    mov $511, %ecx
1:  mov %eax, (%edi)
    add $8, %edi
    add $PAGE_SIZE, %eax
    loop 1b
    movl $(pvh_pt + PTE_TABLE), pvh_pds

    /* One PDPT entry per page directory, one PML4 entry for the PDPT. */
    mov $pvh_pdpt, %edi
    mov $(pvh_pds + PTE_TABLE), %eax
    mov $PVH_PDS, %ecx
1:  mov %eax, (%edi)
    add $8, %edi
    add $PAGE_SIZE, %eax
    loop 1b
    movl $(pvh_pdpt + PTE_TABLE), pvh_pml4

    lgdt pvh_gdt_descriptor
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $pvh_pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $(CR0_PG | CR0_WP | CR0_PE), %eax
    mov %eax, %cr0
    ljmp $GDT_CODE64, $1f

    .code64
1:  mov $GDT_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %esi, %edi
    call pvh_start_c
    ud2
    .size pvh_start, . - pvh_start

/* Accessed bits preset: the CPU never needs to write to these descriptors. */
    .section .rodata.pvh_gdt, "a", @progbits
    .p2align 3
pvh_gdt:
    .quad 0
    .quad 0x00af9b000000ffff    /* GDT_CODE64: 64-bit code, DPL 0 */
    .quad 0x00cf93000000ffff    /* GDT_DATA: flat data, DPL 0 */
pvh_gdt_end:
pvh_gdt_descriptor:
    .word pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt

    .section .bss.page_aligned, "aw", @nobits
    .p2align 12
    .globl pvh_pml4, pvh_pdpt, pvh_pds, pvh_pt
pvh_pml4:
    .skip PAGE_SIZE
pvh_pdpt:
    .skip PAGE_SIZE
pvh_pds:
    .skip PVH_PDS * PAGE_SIZE
pvh_pt:
    .skip PAGE_SIZE

    .section .note.GNU-stack, "", @progbits
