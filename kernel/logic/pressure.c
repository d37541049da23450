/* xenstore pressure (PROTOCOL.md section 8): see pressure.h. */
#include "pressure.h"

#include "kstring.h"
#include "protocol.h"
#include "xs_client.h"

void pressure_init(struct pressure *p)
{
    *p = (struct pressure){0};
}

void pressure_request(struct pressure *p, unsigned nodes, unsigned watches)
{
    if (nodes != PROTO_KEEP)
        p->target[PRESSURE_NODES] = nodes;
    if (watches != PROTO_KEEP)
        p->target[PRESSURE_WATCHES] = watches;
    p->active = p->busy = true;
    p->error_len = 0;
}

bool pressure_next(const struct pressure *p, struct pressure_step *s)
{
    for (unsigned k = PRESSURE_NODES; k <= PRESSURE_WATCHES; k++) {
        unsigned held = p->held[k], target = p->target[k];

        s->kind = (enum pressure_kind)k;
        s->index = held;
        s->op = PRESSURE_ADD;
        if (held < target)
            return true;
        if (held > target) {
            s->index = held - 1;
            s->op = k == PRESSURE_NODES && target == 0 ? PRESSURE_CLEAR : PRESSURE_REMOVE;
            return true;
        }
    }
    s->op = PRESSURE_DONE;
    return p->busy;
}

void pressure_done(struct pressure *p, const struct pressure_step *s, int err)
{
    unsigned *held = &p->held[s->kind];
    struct kbuf b;

    switch (s->op) {
    case PRESSURE_ADD:
        /* EEXIST: a watch xenstored took although its reply timed out: we hold it. */
        if (err == XSW_OK || err == XSW_EEXIST) {
            *held = s->index + 1;
            return;
        }
        break;
    case PRESSURE_REMOVE:
    case PRESSURE_CLEAR:
        /* Gone already (removed by someone else, or never held) is what we wanted. */
        if (err == XSW_OK || err == XSW_ENOENT) {
            *held = s->op == PRESSURE_CLEAR ? 0 : s->index;
            return;
        }
        break;
    case PRESSURE_DONE:
        p->busy = false;
        return;
    }
    /* Going on would fail the same way (a quota): stop this kind where it is. */
    p->target[s->kind] = *held;
    if (p->error_len)
        return;
    kbuf_init(&b, p->error, sizeof(p->error));
    kbuf_puts(&b, s->kind == PRESSURE_NODES ? "node" : "watch");
    if (s->op == PRESSURE_CLEAR) {
        kbuf_putc(&b, 's');
    } else {
        kbuf_putc(&b, ' ');
        kbuf_put_u64(&b, s->index);
    }
    kbuf_puts(&b, ": ");
    kbuf_puts(&b, xsc_error_name(err));
    p->error_len = b.len;
}

bool pressure_resume(struct pressure *p, bool new_domain)
{
    if (!new_domain || !p->active)
        return false;
    p->held[PRESSURE_NODES] = p->held[PRESSURE_WATCHES] = 0;
    p->busy = true;
    return true;
}
