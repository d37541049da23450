/*
 * The seam between the mode-free kernel and the boot mode. One image boots as a PV guest
 * (arch/x86_64/pv/) or as a PVH guest (arch/x86_64/pvh/); the entry point that Xen picks sets
 * `arch` before kernel_main() runs, and everything that differs between the two modes goes
 * through it: where the xenstore and console rings and their event channels are, how shared
 * info is mapped, and what a suspend needs around SCHEDOP_shutdown.
 */
#ifndef XTV_KERNEL_H
#define XTV_KERNEL_H

#include <stdbool.h>

#include "xen/xen_headers.h"

struct arch_mode {
    const char *name; /* "pv" or "pvh": the banner's mode */
    bool hvm;         /* section 9: the toolstack counts pages the guest does not see as RAM */
    /* The guest's command line (NUL-terminated, at most MAX_GUEST_CMDLINE bytes). */
    const char *(*cmdline)(void);
    unsigned long (*memory_kib)(void);
    /* The rings' addresses and ports: valid after boot and after every resume. */
    void *(*store_ring)(evtchn_port_t *port);
    void *(*console_ring)(evtchn_port_t *port);
    /* Make `page` show Xen's shared info frame; give it back its own frame. */
    void (*map_shared_info)(void *page);
    void (*unmap_shared_info)(void *page);
    /* Run once shared info is mapped, at boot and after every resume. */
    void (*shared_info_ready)(void);
    /* SCHEDOP_shutdown(suspend) with the mode's preparation: 0 new domain, 1 cancelled. */
    long (*suspend)(void);
    /* Undo the preparation of suspend() when it was cancelled (shared info is mapped). */
    void (*cancelled)(void);
    /*
     * Section 9 (the balloon): the pages it may give back, [low, high); the frame to hand
     * XENMEM_decrease_reservation for a page, the page made unusable first; a page given back
     * or taken again with `frame` (what XENMEM_populate_physmap wrote back).
     */
    void (*balloon_range)(unsigned long *low, unsigned long *high);
    unsigned long (*balloon_give)(unsigned long pfn);
    void (*balloon_took)(unsigned long pfn, unsigned long frame);
    /* The address of the last page fault; false if it cannot be known now. */
    bool (*fault_address)(unsigned long *address);
};

extern const struct arch_mode *arch;

__attribute__((noreturn)) void kernel_main(void);

#endif
