/*
 * The balloon (PROTOCOL.md section 9, version 1.2): how many pages to give back to Xen for a
 * memory/target, as pure arithmetic checked on the host.
 *
 * memory/target is the KiB the toolstack wants the domain to have (xl mem-set, squeezed). As
 * Linux's watch_target (drivers/xen/xen-balloon.c, ~line 60-100): pages = KiB >> 2, and an HVM
 * (PVH) guest first takes off what the toolstack counts that it does not see as RAM, once, as
 * static-max minus its own pages (target_diff); a PV guest takes off nothing.
 *
 * The guest gives back pages from the top of a range it never uses, `room` pages at most, and
 * meets `percent` of what it is asked to give back, counted from its boot size: the same target
 * always asks for the same pages, so a watch that fires again (after a resume) changes nothing.
 */
#ifndef XTV_BALLOON_H
#define XTV_BALLOON_H


#define BALLOON_PERCENT_MAX 100u

struct balloon {
    unsigned long boot_pages; /* RAM pages at boot */
    unsigned long room;       /* pages the balloon may take */
    unsigned long offset;     /* target pages that are not RAM (target_diff) */
    unsigned long out;        /* pages given back now */
    unsigned percent;         /* of each reduction met (section 9's balloon_percent) */
};

void balloon_init(struct balloon *b, unsigned long boot_pages, unsigned long room);
/* The first target: static_max_kib (0 if unknown) fixes the offset, as Linux does. */
void balloon_offset(struct balloon *b, unsigned long static_max_kib);
/* How many pages should be out for target_kib. */
unsigned long balloon_goal(const struct balloon *b, unsigned long target_kib);

#endif
