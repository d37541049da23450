#include "xen/events.h"

#include "arch/hypercall.h"
#include "xen/shared_info.h"

#define BITS_PER_WORD (8 * sizeof(xen_ulong_t))

void evtchn_notify(evtchn_port_t port)
{
    struct evtchn_send send = {.port = port};
    hypervisor_event_channel_op(EVTCHNOP_send, &send);
}

bool evtchn_clear_pending(evtchn_port_t port)
{
    xen_ulong_t *word = &shared_info()->evtchn_pending[port / BITS_PER_WORD];
    xen_ulong_t bit = (xen_ulong_t)1 << (port % BITS_PER_WORD);
    return (__atomic_fetch_and(word, ~bit, __ATOMIC_SEQ_CST) & bit) != 0;
}

void evtchn_poll(const evtchn_port_t *ports, unsigned int nr_ports, uint64_t deadline_ns)
{
    struct sched_poll poll = {.nr_ports = nr_ports, .timeout = deadline_ns};
    set_xen_guest_handle(poll.ports, (evtchn_port_t *)ports);
    hypervisor_sched_op(SCHEDOP_poll, &poll);
}
