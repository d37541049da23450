/* Set by the entry point Xen chose (pv/setup.c or pvh/setup.c) before kernel_main() runs. */
#include "kernel.h"

const struct arch_mode *arch;
