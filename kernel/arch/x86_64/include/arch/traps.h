#ifndef XTV_ARCH_TRAPS_H
#define XTV_ARCH_TRAPS_H

/* Register the exception handlers with Xen (a PV guest has no IDT of its own). */
void traps_init(void);

#endif
