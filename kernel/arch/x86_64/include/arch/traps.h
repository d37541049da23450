/* Exception entry shared by both boot modes (traps.S, traps.c). */
#ifndef XTV_ARCH_TRAPS_H
#define XTV_ARCH_TRAPS_H

/* The stubs cover vectors 0 .. EXCEPTION_VECTORS - 1. */
#define EXCEPTION_VECTORS 22
/* A PV trap table entry starts this many bytes before the stub: pop %rcx; pop %r11. */
#define PV_ENTRY_FIXUP 3

#ifndef __ASSEMBLY__
/* The stubs' addresses, indexed by vector (the IDT's targets). */
extern const unsigned long exception_entries[EXCEPTION_VECTORS];

/* Register the handlers with Xen's trap table (PV; a PVH guest loads its own IDT instead). */
void pv_traps_init(void);
#endif

#endif
