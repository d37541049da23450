/* Section 9: see balloon.h. */
#include "xen/balloon.h"

#include "arch/hypercall.h"
#include "kernel.h"

#include <xen/memory.h>

static xen_pfn_t frames[BALLOON_BATCH];

unsigned long balloon_exchange(bool give, unsigned long top, unsigned long n)
{
    struct xen_memory_reservation r = {.domid = DOMID_SELF};
    unsigned long i;
    long done;

    if (n > BALLOON_BATCH)
        n = BALLOON_BATCH;
    for (i = 0; i < n; i++)
        frames[i] = give ? arch->balloon_give(top - 1 - i) : top + i;
    set_xen_guest_handle(r.extent_start, frames);
    r.nr_extents = n;
    done = hypervisor_memory_op(give ? XENMEM_decrease_reservation : XENMEM_populate_physmap, &r);
    if (done < 0)
        done = 0;
    /* Taken: the new frames; given back in part: the rest are ours again. */
    for (i = give ? (unsigned long)done : 0; i < (give ? n : (unsigned long)done); i++)
        arch->balloon_took(give ? top - 1 - i : top + i, frames[i]);
    return (unsigned long)done;
}
