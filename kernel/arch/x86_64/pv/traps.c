/*
 * A PV guest has no IDT of its own: Xen bounces exceptions to the handlers of its trap table.
 * Built from the shared stubs, entered PV_ENTRY_FIXUP bytes early (see traps.S).
 */
#include "arch/hypercall.h"
#include "arch/traps.h"

#define X86_EXC_NMI 2
#define X86_EXC_DF 8

/* Every vector but NMI and double fault, which Xen keeps, plus the terminating zero entry. */
static struct trap_info trap_table[EXCEPTION_VECTORS - 2 + 1];

/* int3, into and bound are allowed from user mode, as on bare metal. */
static unsigned int trap_dpl(unsigned int vector)
{
    return vector >= 3 && vector <= 5 ? 3 : 0;
}

void pv_traps_init(void)
{
    unsigned int n = 0;

    for (unsigned int vector = 0; vector < EXCEPTION_VECTORS; vector++) {
        if (vector == X86_EXC_NMI || vector == X86_EXC_DF)
            continue;
        trap_table[n++] = (struct trap_info){
            .vector = (uint8_t)vector,
            .flags = (uint8_t)trap_dpl(vector),
            .cs = FLAT_KERNEL_CS,
            .address = exception_entries[vector] - PV_ENTRY_FIXUP,
        };
    }
    trap_table[n] = (struct trap_info){0};
    hypervisor_set_trap_table(trap_table);
}
