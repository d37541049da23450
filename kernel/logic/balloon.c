/* The balloon's arithmetic (PROTOCOL.md section 9): see balloon.h. */
#include "balloon.h"

#define KIB_PER_PAGE 4u

void balloon_init(struct balloon *b, unsigned long boot_pages, unsigned long room)
{
    *b = (struct balloon){.boot_pages = boot_pages, .room = room, .percent = BALLOON_PERCENT_MAX};
}

void balloon_offset(struct balloon *b, unsigned long static_max_kib)
{
    unsigned long max = static_max_kib / KIB_PER_PAGE;

    b->offset = max > b->boot_pages ? max - b->boot_pages : 0;
}

unsigned long balloon_goal(const struct balloon *b, unsigned long target_kib)
{
    unsigned long want = target_kib / KIB_PER_PAGE;
    unsigned long ask;

    want = want > b->offset ? want - b->offset : 0;
    ask = want < b->boot_pages ? b->boot_pages - want : 0;
    /* At most 2^52 pages: times 100 stays far from overflowing 64 bits. */
    ask = ask * b->percent / BALLOON_PERCENT_MAX;
    return ask < b->room ? ask : b->room;
}
