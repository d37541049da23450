/*
 * Boot sequence and main loop: PROTOCOL.md sections 1, 4 and 5 (the Xen side); the decisions
 * of sections 2 and 3 are made by the pure state machine in logic/protocol.c, whose effects
 * this file carries out.
 *
 * The loop sleeps in SCHEDOP_poll on the xenstore event channel with the next heartbeat as the
 * deadline, so a request is seen as soon as xenstored notifies us, and nothing polls xenstore
 * on a timer.
 */
#include <stdint.h>

#include "arch/hypercall.h"
#include "build_info.h"
#include "logic/balloon.h"
#include "logic/kstring.h"
#include "logic/pressure.h"
#include "logic/protocol.h"
#include "kernel.h"
#include "lib/format.h"
#include "xen/balloon.h"
#include "xen/console.h"
#include "xen/events.h"
#include "xen/shared_info.h"
#include "xen/time.h"
#include "xen/xenstore.h"

#define WATCH_SHUTDOWN 0
#define WATCH_TESTING 1
/* PROTOCOL.md 8: every pressure watch has this token; their events are dropped. */
#define WATCH_PRESSURE 2
/* PROTOCOL.md 9. */
#define WATCH_TARGET 3
#define KEY_TARGET "memory/target"
#define KEY_SHUTDOWN "control/shutdown"
#define KEY_TESTING "control/testing"
#define STATUS_DIR "data/test-vm/"
#define PRESSURE_DIR STATUS_DIR "pressure/"
/* Pressure requests between two looks at the ring: a request waits behind at most these. */
#define PRESSURE_BATCH 16
#define DEFAULT_HEARTBEAT_SECONDS 1
#define MAX_HEARTBEAT_SECONDS 86400
#define MAX_STATUS_KEYS 12
/* Linux retries without a limit; a bound keeps a livelocked xenstored from hanging us. */
#define MAX_TRANSACTION_ATTEMPTS 16

#define FEATURE_KEYS 3
static const char *const feature_keys[FEATURE_KEYS] = {
    "control/feature-poweroff",
    "control/feature-reboot",
    "control/feature-suspend",
};

/*
 * Large and reused: kept out of the 16 KiB stack. The state machine decides on proto_next, a
 * copy of proto, which replaces it once the transaction around the decision committed.
 */
static struct proto protos[2];
static struct proto *proto = &protos[0];
static struct proto *proto_next = &protos[1];
static struct proto_effects effects;
static char key_value[PROTO_VALUE_MAX + 1];
/* The same key read again inside the transaction. */
static char key_in_tx[PROTO_VALUE_MAX + 1];
/* PROTOCOL.md 8: set at boot, re-initialised on resume by pressure_resume(). */
static struct pressure pressure;
/* PROTOCOL.md 9: set at boot; kept across resumes on purpose (pages out stay out). */
static struct balloon balloon;

/*
 * Everything the kernel remembers between events. boot_init() sets all of it;
 * suspend_domain() updates what a resume changes (domid, next tick), and the fields marked
 * below survive a resume on purpose.
 */
static struct {
    long domid;                    /* -1 until read from xenstore */
    uint64_t heartbeat_ns;         /* 0: no heartbeat */
    bool xenstore_stats;           /* xsstats=1: say what each watch event cost */
    uint64_t next_tick_ns;
    uint64_t timer_ns;             /* PROTOCOL.md 7: the one timed step pending; 0: none */
    uint64_t ticks;                /* keeps counting across resumes on purpose */
    uint64_t resumes;              /* counts across resumes on purpose */
    bool feature_refusal_logged[FEATURE_KEYS]; /* "logged once" across resumes on purpose */
    const char *status_refused[MAX_STATUS_KEYS]; /* status key names (literals) logged once */
    size_t status_refusals_logged;
    unsigned long balloon_high;    /* the balloon's range ends here (kernel.h) */
    bool balloon_offset_read;      /* static-max read once, as Linux (balloon.h) */
    bool balloon_active;           /* status and console from the first change on, for good */
} kernel;

/* A status key the toolstack made read-only would otherwise be reported on every event. */
static void write_status(const char *name, const char *data, size_t len)
{
    char path[64];
    struct kbuf b;
    size_t i;

    kbuf_init(&b, path, sizeof(path));
    kbuf_printf(&b, STATUS_DIR "%s", name);
    int err = xenstore_write(path, data, len);
    if (!err)
        return;
    for (i = 0; i < kernel.status_refusals_logged; i++)
        if (kernel.status_refused[i] == name)
            return;
    console_printf("write %s refused: %s; ignored", path, xenstore_error_name(err));
    if (i < MAX_STATUS_KEYS) {
        kernel.status_refused[i] = name;
        kernel.status_refusals_logged++;
    }
}

static void write_status_u64(const char *name, uint64_t number)
{
    char text[24];
    struct kbuf b;

    kbuf_init(&b, text, sizeof(text));
    kbuf_put_u64(&b, number);
    write_status(name, text, b.len);
}

static long read_domid(void)
{
    char text[16];
    size_t len = 0;
    unsigned long domid;
    int err = xenstore_read("domid", text, sizeof(text), &len);

    if (err) {
        console_printf("cannot read domid: %s", xenstore_error_name(err));
        return -1;
    }
    return kparse_ulong(text, len, &domid) && domid <= 0xffff ? (long)domid : -1;
}

/* The value of the last `name=value` word on the command line; false if there is none. */
static bool cmdline_option(const char *name, const char **value, size_t *value_len)
{
    const char *cmdline = arch->cmdline();
    size_t len = kstrnlen(cmdline, MAX_GUEST_CMDLINE);
    size_t name_len = kstrlen(name);
    bool found = false;

    for (size_t i = 0; i < len;) {
        while (i < len && cmdline[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && cmdline[i] != ' ')
            i++;
        if (i - start > name_len && kstartswith(cmdline + start, i - start, name) &&
            cmdline[start + name_len] == '=') {
            *value = cmdline + start + name_len + 1;
            *value_len = i - start - name_len - 1;
            found = true;
        }
    }
    return found;
}

/* heartbeat=<seconds>; anything odd keeps the default. */
static uint64_t heartbeat_from_cmdline(void)
{
    const char *digits;
    size_t n;
    unsigned long seconds;

    if (!cmdline_option("heartbeat", &digits, &n))
        return DEFAULT_HEARTBEAT_SECONDS * NSEC_PER_SEC;
    if (kparse_ulong(digits, n, &seconds) && seconds <= MAX_HEARTBEAT_SECONDS)
        return seconds * NSEC_PER_SEC;
    console_printf("ignoring heartbeat=%.*s: want whole seconds 0..%d", (int)n, digits,
                   MAX_HEARTBEAT_SECONDS);
    return DEFAULT_HEARTBEAT_SECONDS * NSEC_PER_SEC;
}

/* Recurse through 512-byte frames: enough of them run off the bottom of the 16 KiB stack. */
static __attribute__((noinline)) unsigned overflow_stack(unsigned depth)
{
    volatile unsigned char frame[512];

    frame[0] = (unsigned char)depth;
    frame[sizeof(frame) - 1] = frame[0];
    if (depth == 0)
        return frame[0];
    return overflow_stack(depth - 1) + frame[sizeof(frame) - 1];
}

/*
 * fault=null|ud|stack: fault on purpose once ready, so the lab can check that a CPU exception
 * is reported on the console and crashes the domain (the path a kernel bug would take), and
 * that a stack overflow hits the guard page instead of the memory below the stack.
 */
static void fault_on_request(void)
{
    const char *kind;
    size_t n;

    if (!cmdline_option("fault", &kind, &n))
        return;
    console_printf("fault=%.*s: faulting on purpose", (int)n, kind);
    if (kstreq(kind, n, "null")) {
        volatile const unsigned long *null = NULL;
        (void)*null;
    } else if (kstreq(kind, n, "ud")) {
        __asm__ __volatile__("ud2");
    } else if (kstreq(kind, n, "stack")) {
        /* 36 frames of 512 bytes: 2 KiB more than the stack, all of it in the guard page. */
        unsigned sum = overflow_stack(36);
        console_printf("fault=stack: the overflow went unnoticed (%u)", sum);
        return;
    }
    console_printf("fault=%.*s: unknown kind (null, ud, stack); carrying on", (int)n, kind);
}

static void advertise_features(void)
{
    /*
     * PROTOCOL.md 9: as Linux (drivers/xen/xen-balloon.c); squeezed sets no target without it
     * (xen-api ocaml/squeezed/src/squeeze_xen.ml ~line 819). xenopsd makes control/ writable
     * for the guest (ocaml/xenopsd/xc/domain.ml ~line 615), libxl does not and creates no such
     * key: refused there, and not logged, so a 1.1 tester on xl sees no new line.
     */
    xenstore_write_string("control/feature-balloon", "1");
    for (size_t i = 0; i < FEATURE_KEYS; i++) {
        int err = xenstore_write_string(feature_keys[i], "1");
        if (err && !kernel.feature_refusal_logged[i]) {
            console_printf("write %s refused: %s; ignored", feature_keys[i],
                           xenstore_error_name(err));
            kernel.feature_refusal_logged[i] = true;
        }
    }
}

/* By watch id; the pressure watches (PROTOCOL.md 8) are registered by the pressure work. */
static const char *const watched[] = {KEY_SHUTDOWN, KEY_TESTING, NULL, KEY_TARGET};

static void register_watches(void)
{
    for (unsigned id = 0; id < sizeof(watched) / sizeof(watched[0]); id++) {
        int err = watched[id] ? xenstore_watch(watched[id], id) : XSW_OK;
        if (err)
            console_printf("watch %s failed: %s", watched[id], xenstore_error_name(err));
    }
}

/*
 * PROTOCOL.md 9: meet memory/target (or balloon.percent of it) now, in batches of one
 * hypercall; the status under data/test-vm/balloon/, target last (a tester waits for it).
 * A missing or odd target is not answered, as Linux's watch_target. Nothing is said until a
 * target or a message first asks for something (then for good): a 1.1 tester sees no change.
 */
static void balloon_answer(bool asked)
{
    char text[24];
    size_t len = 0;
    unsigned long kib;

    if (xenstore_read(KEY_TARGET, text, sizeof(text), &len) ||
        !kparse_ulong(text, len, &kib))
        return;
    if (!kernel.balloon_offset_read) {
        unsigned long max = 0;
        kernel.balloon_offset_read = true;
        if (arch->hvm && !xenstore_read("memory/static-max", text, sizeof(text), &len) &&
            kparse_ulong(text, len, &max))
            balloon_offset(&balloon, max);
    }
    unsigned long goal = balloon_goal(&balloon, kib);
    kernel.balloon_active |= asked || goal;
    if (!kernel.balloon_active)
        return;
    while (balloon.out != goal) {
        bool give = balloon.out < goal;
        unsigned long n = give ? goal - balloon.out : balloon.out - goal;
        unsigned long done = balloon_exchange(give, kernel.balloon_high - balloon.out, n);

        balloon.out = give ? balloon.out + done : balloon.out - done;
        if (done < (n < BALLOON_BATCH ? n : BALLOON_BATCH)) {
            console_printf("balloon: %lu pages refused", n - done);
            break;
        }
    }
    kib = (balloon.boot_pages - balloon.out) * 4;
    write_status_u64("balloon/kib", kib);
    write_status("balloon/target", text, len);
    console_printf("balloon: target %.*s KiB, %u%%: %lu KiB", (int)len, text, balloon.percent, kib);
}

static void answer_key(const char *path, enum proto_key key, int err)
{
    if (err == XSW_OK)
        return;
    console_printf("write %s refused: %s", path, xenstore_error_name(err));
    proto_write_refused(proto, key);
}

/* PROTOCOL.md 8: the status under data/test-vm/pressure/, state last (a tester waits for it). */
static void publish_pressure(const char *state)
{
    write_status_u64("pressure/nodes", pressure.held[PRESSURE_NODES]);
    write_status_u64("pressure/watches", pressure.held[PRESSURE_WATCHES]);
    write_status("pressure/error", pressure.error, pressure.error_len);
    write_status("pressure/state", state, kstrlen(state));
}

static void pressure_started(void)
{
    publish_pressure("working");
    console_printf("xenstore pressure: %u nodes, %u watches", pressure.target[PRESSURE_NODES],
                   pressure.target[PRESSURE_WATCHES]);
}

/* Up to PRESSURE_BATCH steps of the work (logic/pressure.h); false if there was none. */
static bool pressure_work(void)
{
    struct pressure_step step;
    unsigned n;

    for (n = 0; n < PRESSURE_BATCH && pressure_next(&pressure, &step); n++) {
        char path[48];
        struct kbuf b;
        int err = XSW_OK;

        kbuf_init(&b, path, sizeof(path));
        kbuf_puts(&b, step.kind == PRESSURE_NODES ? PRESSURE_DIR "n" : PRESSURE_DIR "w");
        /* Nodes in groups of 100: C xenstored refuses a node over 2048 bytes, its children's
         * names included, so one directory of them all would stop at about 530. */
        if (step.kind == PRESSURE_NODES && step.op != PRESSURE_CLEAR)
            kbuf_printf(&b, "/%u", step.index / 100);
        if (step.op != PRESSURE_CLEAR)
            kbuf_printf(&b, "/%u", step.index);
        if (step.op == PRESSURE_DONE) {
            publish_pressure("done");
            console_printf("xenstore pressure done: %u nodes, %u watches%s%.*s",
                           pressure.held[PRESSURE_NODES], pressure.held[PRESSURE_WATCHES],
                           pressure.error_len ? "; first error: " : "", (int)pressure.error_len,
                           pressure.error);
        } else if (step.kind == PRESSURE_WATCHES) {
            err = step.op == PRESSURE_ADD ? xenstore_watch(path, WATCH_PRESSURE)
                                          : xenstore_unwatch(path, WATCH_PRESSURE);
        } else {
            err = step.op == PRESSURE_ADD ? xenstore_write(path, "", 0) : xenstore_remove(path);
        }
        pressure_done(&pressure, &step, err);
    }
    return n > 0;
}

/* Steps 2-4 of the effects contract (protocol.h); returns the action for the caller. */
static enum proto_action apply_effects(const struct proto_effects *fx)
{
    if (fx->update_state)
        write_status("state", fx->state, kstrlen(fx->state));
    if (fx->update_armed)
        write_status("armed", fx->armed, fx->armed_len);
    if (fx->update_last_error)
        write_status("last-error", fx->last_error, fx->last_error_len);

    console_write(fx->console, fx->console_len);
    if ((fx->xs_nodes & fx->xs_watches) != PROTO_KEEP) {
        pressure_request(&pressure, fx->xs_nodes, fx->xs_watches);
        pressure_started();
    }

    if (fx->balloon_percent != PROTO_KEEP) {
        balloon.percent = fx->balloon_percent;
        balloon_answer(true);
    }

    if (fx->action != PROTO_ACTION_NONE)
        console_flush();
    return fx->action;
}

static void start_heartbeat(void)
{
    kernel.next_tick_ns = kernel.heartbeat_ns ? time_now_ns() + kernel.heartbeat_ns : 0;
}

static void announce_ready(void)
{
    write_status("version", XTV_VERSION, sizeof(XTV_VERSION) - 1);
    write_status_u64("resumes", kernel.resumes);
    proto_status(proto, &effects);
    apply_effects(&effects);
    console_printf("ready");
    start_heartbeat();
}

static void suspend_domain(void)
{
    /* Section 4: what the boot mode needs (kernel.h), then SCHEDOP_shutdown(suspend). */
    shared_info_suspend();
    long rc = arch->suspend();
    bool new_domain = rc == 0;

    if (!new_domain)
        arch->cancelled();
    shared_info_resume();
    arch->shared_info_ready();
    console_resume(new_domain);
    xenstore_resume(new_domain);

    /* Only an action suspends, and an action ends timed steps; system time also restarts on
     * another host. */
    kernel.timer_ns = 0;
    /* A refused suspend (rc < 0) never left this domain: not a resume. */
    if (rc >= 0)
        kernel.resumes++;
    if (new_domain) {
        kernel.domid = read_domid();
        register_watches();
        advertise_features();
        console_printf("resumed domid %ld", kernel.domid);
    } else {
        if (rc != 1)
            console_printf("suspend hypercall failed: %ld", rc);
        console_printf("resumed (cancelled) domid %ld", kernel.domid);
    }
    proto_on_resume(proto, new_domain, &effects);
    apply_effects(&effects);
    announce_ready();
    if (pressure_resume(&pressure, new_domain))
        pressure_started();
    /*
     * No forced re-read: a new domain's re-registered watches fire once by themselves, and
     * after a cancelled suspend the ring holds whatever happened meanwhile.
     */
}

static void shutdown_domain(unsigned int reason)
{
    struct sched_shutdown shutdown = {.reason = reason};
    long rc = hypervisor_sched_op(SCHEDOP_shutdown, &shutdown);
    /* Only reached if Xen refused: say so and keep serving requests. */
    console_printf("SCHEDOP_shutdown(%u) returned %ld", reason, rc);
}

static void perform(enum proto_action action)
{
    switch (action) {
    case PROTO_ACTION_NONE:
        break;
    case PROTO_ACTION_POWEROFF:
        shutdown_domain(SHUTDOWN_poweroff);
        break;
    case PROTO_ACTION_REBOOT:
        shutdown_domain(SHUTDOWN_reboot);
        break;
    case PROTO_ACTION_CRASH:
        shutdown_domain(SHUTDOWN_crash);
        break;
    case PROTO_ACTION_SUSPEND:
        suspend_domain();
        break;
    }
}

/*
 * Step 1 of the effects contract inside the transaction `tx` that read the key: the answer to
 * control/shutdown or control/testing and the commit, sent together. Returns the commit's
 * result; *answer_err the answer's.
 */
static int answer_and_commit(uint32_t tx, const char *path, const struct proto_effects *fx,
                             bool testing, int *answer_err)
{
    const char *value = "";
    size_t len = 0;

    *answer_err = XSW_OK;
    if (tx == XS_NO_TX) {
        /* No transaction to be had: answer as older kernels did. */
        if (testing ? fx->ack_testing : fx->shutdown_reply == PROTO_REPLY_CLEAR)
            *answer_err = xenstore_write(path, "", 0);
        else if (!testing && fx->shutdown_reply == PROTO_REPLY_DELETE)
            *answer_err = xenstore_remove(path);
        else if (!testing && fx->shutdown_reply == PROTO_REPLY_WRITE)
            *answer_err = xenstore_write(path, fx->shutdown_value, fx->shutdown_value_len);
        if (*answer_err == XSW_ENOENT && !testing && fx->shutdown_reply == PROTO_REPLY_DELETE)
            *answer_err = XSW_OK;
        return XSW_OK;
    }
    if (testing) {
        if (!fx->ack_testing)
            return xenstore_transaction_end(tx, true);
    } else {
        switch (fx->shutdown_reply) {
        case PROTO_REPLY_UNTOUCHED:
            return xenstore_transaction_end(tx, true);
        case PROTO_REPLY_CLEAR:
            break;
        case PROTO_REPLY_DELETE:
            value = NULL;
            break;
        case PROTO_REPLY_WRITE:
            value = fx->shutdown_value;
            len = fx->shutdown_value_len;
            break;
        }
    }
    int err = xenstore_change_and_commit(tx, path, value, len, answer_err);
    /* Deleting what is already gone is the answer we wanted. */
    if (*answer_err == XSW_ENOENT && !value)
        *answer_err = XSW_OK;
    return err;
}

/*
 * The key read again inside tx: XSW_OK if it holds what the plain read found (present, len
 * bytes of key_value), XSW_EAGAIN if a write came between the two reads (the decision would be
 * made on a value that is gone; a commit would not notice on oxenstored if nothing is written),
 * else the read's error. Reading it in tx also makes a commit that writes conflict with any
 * later write.
 */
static int same_in_transaction(uint32_t tx, const char *path, bool present, size_t len)
{
    size_t tx_len = 0;
    int err = xenstore_read_tx(tx, path, key_in_tx, sizeof(key_in_tx), &tx_len);

    if (err != XSW_OK && err != XSW_ENOENT)
        return err;
    if ((err == XSW_OK) != present || tx_len != len || kmemcmp(key_in_tx, key_value, len) != 0)
        return XSW_EAGAIN;
    return XSW_OK;
}

/*
 * PROTOCOL.md 2 and 3: read the key and answer it in one transaction, retried on EAGAIN. The
 * state machine runs on a copy of its state, kept only once the transaction committed: a
 * conflicting write means the value read was not the last one, so the decision is redone.
 */
static void handle_watch_once(int id);
static void keep_decision(const char *path, enum proto_key key, int answer_err);
static void carry_out(void);
static void handle_timer(void);
/* xenstore_requests() and xenstore_round_trips() once the last event was answered. */
static uint64_t answered_requests, answered_round_trips;

/* xsstats=1 (for the bench): the xenstore traffic of each event, said after all of it. */
static void handle_watch(int id)
{
    uint64_t requests = xenstore_requests(), round_trips = xenstore_round_trips();

    answered_requests = requests;
    answered_round_trips = round_trips;
    handle_watch_once(id);
    if (kernel.xenstore_stats)
        console_printf("xenstore: %s event answered after %lu requests in %lu round trips "
                       "(%lu in %lu in all)",
                       id == WATCH_TESTING ? KEY_TESTING : KEY_SHUTDOWN,
                       (unsigned long)(answered_requests - requests),
                       (unsigned long)(answered_round_trips - round_trips),
                       (unsigned long)(xenstore_requests() - requests),
                       (unsigned long)(xenstore_round_trips() - round_trips));
}

static void handle_watch_once(int id)
{
    bool testing = id == WATCH_TESTING;
    const char *path = testing ? KEY_TESTING : KEY_SHUTDOWN;
    int answer_err = XSW_OK;

    for (unsigned attempt = 1;; attempt++) {
        uint32_t tx = XS_NO_TX;
        size_t len = 0;
        int start_err;
        /*
         * The events a read covers are those queued before its reply, so it must read the store
         * as it is: outside the transaction. oxenstored reads a transaction's snapshot, and ends
         * a transaction that only read without checking it (process.ml, do_transaction_end):
         * a request written after the snapshot but before an in-transaction read was consumed
         * unseen (the lab's bad-input run lost 4 in a row).
         */
        int err = xenstore_read_then_start(path, key_value, sizeof(key_value), &len, id, &tx,
                                           &start_err);

        if (err != XSW_OK && err != XSW_ENOENT) {
            console_printf("read %s failed: %s", path, xenstore_error_name(err));
            if (start_err == XSW_OK)
                xenstore_transaction_end(tx, false);
            return;
        }
        bool present = err == XSW_OK;
        if (start_err) {
            console_printf("transaction for %s failed to start: %s; reading without", path,
                           xenstore_error_name(start_err));
            tx = XS_NO_TX;
        } else if ((err = same_in_transaction(tx, path, present, len)) != XSW_OK) {
            xenstore_transaction_end(tx, false);
            if (err == XSW_EAGAIN && attempt < MAX_TRANSACTION_ATTEMPTS)
                continue;
            console_printf("transaction for %s failed: %s (attempt %u)", path,
                           xenstore_error_name(err), attempt);
            if (err == XSW_EAGAIN)
                xenstore_queue_event((unsigned int)id);
            return;
        }
        kmemcpy(proto_next, proto, sizeof(*proto));
        if (testing)
            proto_on_testing(proto_next, key_value, len, present, &effects);
        else
            proto_on_shutdown(proto_next, key_value, len, present, &effects);
        err = answer_and_commit(tx, path, &effects, testing, &answer_err);
        if (err == XSW_EAGAIN && attempt < MAX_TRANSACTION_ATTEMPTS)
            continue;
        if (err) {
            /* Nothing changed in xenstore; after EAGAIN every time, try again later. */
            console_printf("transaction for %s failed: %s (attempt %u)", path,
                           xenstore_error_name(err), attempt);
            if (err == XSW_EAGAIN)
                xenstore_queue_event((unsigned int)id);
            return;
        }
        break;
    }
    answered_requests = xenstore_requests();
    answered_round_trips = xenstore_round_trips();
    keep_decision(path, testing ? PROTO_KEY_TESTING : PROTO_KEY_SHUTDOWN, answer_err);
}

/* The transaction committed: the machine's new state is the real one; steps 2-6 follow. */
static void keep_decision(const char *path, enum proto_key key, int answer_err)
{
    struct proto *done = proto;

    proto = proto_next;
    proto_next = done;
    answer_key(path, key, answer_err);
    carry_out();
}

/*
 * PROTOCOL.md 7: a late acknowledgement is written only while control/shutdown still holds the
 * request it answers, in a transaction that read it there (so a request written meanwhile is
 * never wiped); otherwise the instruction ends unanswered and the new value's own event is
 * handled as usual (the plain read takes no event off the queue).
 */
static void handle_timer(void)
{
    int answer_err = XSW_OK;

    kernel.timer_ns = 0;
    for (unsigned attempt = 1;; attempt++) {
        kmemcpy(proto_next, proto, sizeof(*proto));
        proto_on_timer(proto_next, &effects);
        if (!effects.answer_if_unchanged)
            break;
        uint32_t tx;
        size_t len = 0;
        int start_err;
        int err = xenstore_read_then_start(KEY_SHUTDOWN, key_value, sizeof(key_value), &len, -1,
                                           &tx, &start_err);

        if (start_err == XSW_OK) {
            bool unchanged = err == XSW_OK && len == effects.expect_len &&
                             kmemcmp(key_value, effects.expect_value, len) == 0;

            /* EAGAIN from the second read or the commit: a write came in between, look again. */
            if (unchanged && (err = same_in_transaction(tx, KEY_SHUTDOWN, true, len)) == XSW_OK) {
                err = answer_and_commit(tx, KEY_SHUTDOWN, &effects, false, &answer_err);
                if (err == XSW_OK)
                    break;
            } else {
                xenstore_transaction_end(tx, false);
            }
            if (unchanged && err == XSW_EAGAIN && attempt < MAX_TRANSACTION_ATTEMPTS)
                continue;
        }
        /* Changed, gone, or no transaction to be had: the request it answers is not there. */
        proto_on_answer_lost(proto, &effects);
        apply_effects(&effects);
        return;
    }
    keep_decision(KEY_SHUTDOWN, PROTO_KEY_SHUTDOWN, answer_err);
}

/*
 * PROTOCOL.md 7: neither xenstore nor the console until the hang is over. Polling no port wakes
 * on any event, so sleep again until the deadline.
 */
static void hang(unsigned ms, bool forever)
{
    uint64_t until = time_now_ns() + (uint64_t)ms * 1000000u;

    console_flush();
    while (forever || time_now_ns() < until)
        evtchn_poll(NULL, 0, forever ? 0 : until);
}

/* Steps 2-6 of the effects contract (protocol.h) for `effects`, whose step 1 is done. */
static void carry_out(void)
{
    enum proto_wait wait = effects.wait;
    unsigned wait_ms = effects.wait_ms;
    bool forever = effects.wait_forever;

    if (effects.cancel_timer)
        kernel.timer_ns = 0;
    /* perform() may suspend and reuse `effects`: the wait was read first. */
    perform(apply_effects(&effects));
    switch (wait) {
    case PROTO_WAIT_NONE:
        break;
    case PROTO_WAIT_TIMER:
        kernel.timer_ns = time_now_ns() + (uint64_t)wait_ms * 1000000u;
        break;
    case PROTO_WAIT_HANG:
        hang(wait_ms, forever);
        handle_timer();
        break;
    }
}

static void heartbeat(void)
{
    if (!kernel.heartbeat_ns)
        return;
    uint64_t now = time_now_ns();
    if (now < kernel.next_tick_ns)
        return;
    console_printf("domain %ld tick %lu", kernel.domid, (unsigned long)++kernel.ticks);
    kernel.next_tick_ns += kernel.heartbeat_ns;
    if (kernel.next_tick_ns <= now)
        kernel.next_tick_ns = now + kernel.heartbeat_ns;
}

static void boot_init(void)
{
    kernel.domid = -1;
    kernel.ticks = 0;
    kernel.resumes = 0;
    kernel.timer_ns = 0;
    for (size_t i = 0; i < FEATURE_KEYS; i++)
        kernel.feature_refusal_logged[i] = false;
    kernel.status_refusals_logged = 0;
    pressure_init(&pressure);
    unsigned long low;
    arch->balloon_range(&low, &kernel.balloon_high);
    balloon_init(&balloon, arch->memory_kib() / 4, kernel.balloon_high - low);
    kernel.balloon_offset_read = kernel.balloon_active = false;
}

void kernel_main(void)
{
    boot_init();
    shared_info_init();
    console_init();
    xenstore_init();
    arch->shared_info_ready();

    kernel.domid = read_domid();
    console_printf("xen-test-vm %s (revision %s) mode %s domid %ld memory %lu KiB", XTV_VERSION,
                   XTV_SOURCE_REVISION, arch->name, kernel.domid, arch->memory_kib());
    kernel.heartbeat_ns = heartbeat_from_cmdline();
    const char *stats;
    size_t stats_len;
    kernel.xenstore_stats = cmdline_option("xsstats", &stats, &stats_len) &&
                            kstreq(stats, stats_len, "1");

    proto_init(proto);
    register_watches();
    advertise_features();
    announce_ready();
    fault_on_request();

    for (;;) {
        /* Clears the port's pending bit, then drains: a later notification wakes the poll. */
        xenstore_poll_ring();
        int id = xenstore_next_event();
        if (id >= 0) {
            if (id == WATCH_TARGET)
                balloon_answer(false);
            else if (id != WATCH_PRESSURE)
                handle_watch(id);
            continue;
        }
        heartbeat();
        if (kernel.timer_ns && time_now_ns() >= kernel.timer_ns) {
            handle_timer();
            continue;
        }
        if (pressure_work())
            continue;
        /* PROTOCOL.md 1.4: never asleep while the ring holds a message or an event waits. */
        if (!xenstore_idle())
            continue;
        /* Clear before pushing: xenconsoled's notification after it read wakes the poll. */
        evtchn_port_t ports[2] = {xenstore_port(), console_port()};
        evtchn_clear_pending(ports[1]);
        bool console_done = console_push();
        uint64_t deadline = kernel.next_tick_ns;
        if (kernel.timer_ns && (!deadline || kernel.timer_ns < deadline))
            deadline = kernel.timer_ns;
        evtchn_poll(ports, console_done ? 1 : 2, deadline);
    }
}
