/* The architecture-neutral kernel, entered once the architecture code has set up traps. */
#ifndef XTV_KERNEL_H
#define XTV_KERNEL_H

__attribute__((noreturn)) void kernel_main(void);

#endif
