/*
 * No state of our own: every reading comes from vcpu_info[0].time, which Xen keeps current,
 * also after a migration to a host with another TSC frequency.
 */
#include "xen/time.h"

#include "arch/cpu.h"
#include "xen/shared_info.h"

static uint64_t scale_tsc_delta(uint64_t delta, uint32_t mul_frac, int8_t shift)
{
    if (shift < 0)
        delta >>= -shift;
    else
        delta <<= shift;
    return (uint64_t)(((unsigned __int128)delta * mul_frac) >> 32);
}

uint64_t time_now_ns(void)
{
    const struct vcpu_time_info *t = &shared_info()->vcpu_info[0].time;
    uint32_t version;
    uint64_t now;

    do {
        version = READ_ONCE(t->version);
        rmb();
        uint64_t delta = rdtsc_ordered() - t->tsc_timestamp;
        now = t->system_time + scale_tsc_delta(delta, t->tsc_to_system_mul, t->tsc_shift);
        rmb();
    } while ((version & 1) || version != READ_ONCE(t->version));
    return now;
}
