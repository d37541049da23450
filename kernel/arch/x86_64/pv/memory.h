/*
 * Pseudo-physical <-> machine frame translation and the p2m frame lists a PV guest publishes
 * for save/migration.
 */
#ifndef XTV_PV_MEMORY_H
#define XTV_PV_MEMORY_H

#include "xen/xen_headers.h"

/* Set once at boot; the page stays at the same virtual address across save/restore. */
extern start_info_t *xen_start_info;

/* The builder maps pseudo-physical memory 1:1 from virtual address 0 (VIRT_BASE 0). */
static inline void *pfn_to_virt(unsigned long pfn)
{
    return (void *)(pfn << 12);
}

static inline unsigned long virt_to_pfn(const void *va)
{
    return (unsigned long)va >> 12;
}

unsigned long pfn_to_mfn(unsigned long pfn);
unsigned long mfn_to_pfn(unsigned long mfn);
unsigned long virt_to_mfn(const void *va);
void *mfn_to_virt(unsigned long mfn);

/* Record start_info. */
void memory_init(start_info_t *start_info);
/* Publish max_pfn and the frame-list tree in shared info (needs shared info mapped): at boot
 * and after every resume, since a restore gives every page a new MFN. */
void memory_publish_p2m(void);

/* Section 9, for arch_mode (kernel.h). */
void pv_balloon_range(unsigned long *low, unsigned long *high);
unsigned long pv_balloon_give(unsigned long pfn);
void pv_balloon_took(unsigned long pfn, unsigned long mfn);

#endif
