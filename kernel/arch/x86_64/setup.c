/* First C code: architecture setup, then hand over to the architecture-neutral kernel_main(). */
#include "arch/hypercall.h"
#include "arch/traps.h"
#include "kernel.h"
#include "xen/memory.h"

extern char null_page[];

__attribute__((noreturn)) void arch_start(start_info_t *start_info);

void arch_start(start_info_t *start_info)
{
    memory_init(start_info);
    traps_init();
    /* With page 0 unmapped a NULL dereference faults instead of reading our own image. */
    hypervisor_update_va_mapping((unsigned long)null_page, 0, UVMF_INVLPG);
    kernel_main();
}
