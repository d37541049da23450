/* x86_64 CPU helpers shared by the Xen plumbing: barriers, TSC, page geometry. */
#ifndef XTV_ARCH_CPU_H
#define XTV_ARCH_CPU_H

#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)

/* Shared rings are ordinary write-back memory: x86 orders loads and stores except store->load. */
#define barrier() __asm__ __volatile__("" ::: "memory")
#define rmb() barrier()
#define wmb() barrier()
#define mb() __asm__ __volatile__("mfence" ::: "memory")

#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

static inline uint64_t rdtsc_ordered(void)
{
    uint32_t lo, hi;
    /* lfence keeps the TSC read from moving above the seqlock read that precedes it. */
    __asm__ __volatile__("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}

#endif
