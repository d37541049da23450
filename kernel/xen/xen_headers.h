/*
 * The Xen public headers the kernel uses, in an order that compiles: they are not
 * self-contained and expect the fixed-width types first. __XEN_INTERFACE_VERSION__ must come
 * from the build: without it the headers silently select the legacy hypercall numbers.
 */
#ifndef XTV_XEN_HEADERS_H
#define XTV_XEN_HEADERS_H

#ifndef __XEN_INTERFACE_VERSION__
#error "__XEN_INTERFACE_VERSION__ must be defined by the build"
#endif
/* sched_op and event_channel_op got their current numbers in 0x00030202. */
#if __XEN_INTERFACE_VERSION__ < 0x00030202
#error "__XEN_INTERFACE_VERSION__ selects a legacy interface version (old hypercall numbers)"
#endif

#include <stddef.h>
#include <stdint.h>

#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/sched.h>
#include <xen/io/console.h>
#include <xen/io/xs_wire.h>

#endif
