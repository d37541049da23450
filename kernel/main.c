/*
 * Boot sequence and main loop: PROTOCOL.md sections 1, 4 and 5 (the Xen side); the decisions
 * of sections 2 and 3 are made by the pure state machine in common/protocol.c, whose effects
 * this file carries out.
 *
 * The loop sleeps in SCHEDOP_poll on the xenstore event channel with the next heartbeat as the
 * deadline, so a request is seen as soon as xenstored notifies us, and nothing polls xenstore
 * on a timer.
 */
#include <stdint.h>

#include "arch/hypercall.h"
#include "build_info.h"
#include "common/kstring.h"
#include "common/protocol.h"
#include "kernel.h"
#include "lib/format.h"
#include "xen/console.h"
#include "xen/events.h"
#include "xen/memory.h"
#include "xen/shared_info.h"
#include "xen/time.h"
#include "xen/xenstore.h"

#define WATCH_SHUTDOWN 0
#define WATCH_TESTING 1
#define KEY_SHUTDOWN "control/shutdown"
#define KEY_TESTING "control/testing"
#define STATUS_DIR "data/test-vm/"
#define DEFAULT_HEARTBEAT_SECONDS 1
#define MAX_HEARTBEAT_SECONDS 86400
#define MAX_STATUS_KEYS 8

#define FEATURE_KEYS 3
static const char *const feature_keys[FEATURE_KEYS] = {
    "control/feature-poweroff",
    "control/feature-reboot",
    "control/feature-suspend",
};

/* Large and reused: kept out of the 16 KiB stack. */
static struct proto proto;
static struct proto_effects effects;
static char key_value[PROTO_VALUE_MAX + 1];

/*
 * Everything the kernel remembers between events. boot_init() sets all of it;
 * suspend_domain() updates what a resume changes (domid, next tick), and the fields marked
 * below survive a resume on purpose.
 */
static struct {
    long domid;                    /* -1 until read from xenstore */
    uint64_t heartbeat_ns;         /* 0: no heartbeat */
    uint64_t next_tick_ns;
    uint64_t ticks;                /* keeps counting across resumes on purpose */
    uint64_t resumes;              /* counts across resumes on purpose */
    bool feature_refusal_logged[FEATURE_KEYS]; /* "logged once" across resumes on purpose */
    const char *status_refused[MAX_STATUS_KEYS]; /* status key names (literals) logged once */
    size_t status_refusals_logged;
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
    long domid = 0;
    int err = xenstore_read("domid", text, sizeof(text), &len);

    if (err) {
        console_printf("cannot read domid: %s", xenstore_error_name(err));
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9' || domid > 0xffff)
            return -1;
        domid = domid * 10 + (text[i] - '0');
    }
    return len ? domid : -1;
}

/* The value of the last `name=value` word on the command line; false if there is none. */
static bool cmdline_option(const char *name, const char **value, size_t *value_len)
{
    const char *cmdline = (const char *)xen_start_info->cmd_line;
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
    uint64_t seconds = 0;
    bool valid;

    if (!cmdline_option("heartbeat", &digits, &n))
        return DEFAULT_HEARTBEAT_SECONDS * NSEC_PER_SEC;
    valid = n > 0;
    for (size_t d = 0; d < n && valid; d++) {
        valid = digits[d] >= '0' && digits[d] <= '9';
        seconds = seconds * 10 + (uint64_t)(digits[d] - '0');
        valid = valid && seconds <= MAX_HEARTBEAT_SECONDS;
    }
    if (valid)
        return seconds * NSEC_PER_SEC;
    console_printf("ignoring heartbeat=%.*s: want whole seconds 0..%d", (int)n, digits,
                   MAX_HEARTBEAT_SECONDS);
    return DEFAULT_HEARTBEAT_SECONDS * NSEC_PER_SEC;
}

/*
 * fault=null|ud: fault on purpose once ready, so the lab can check that a CPU exception is
 * reported on the console and crashes the domain (the path a kernel bug would take).
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
    }
    console_printf("fault=%.*s: unknown kind (null, ud); carrying on", (int)n, kind);
}

static void advertise_features(void)
{
    for (size_t i = 0; i < FEATURE_KEYS; i++) {
        int err = xenstore_write_string(feature_keys[i], "1");
        if (err && !kernel.feature_refusal_logged[i]) {
            console_printf("write %s refused: %s; ignored", feature_keys[i],
                           xenstore_error_name(err));
            kernel.feature_refusal_logged[i] = true;
        }
    }
}

static void register_watches(void)
{
    int err = xenstore_watch(KEY_SHUTDOWN, WATCH_SHUTDOWN);
    if (err)
        console_printf("watch %s failed: %s", KEY_SHUTDOWN, xenstore_error_name(err));
    err = xenstore_watch(KEY_TESTING, WATCH_TESTING);
    if (err)
        console_printf("watch %s failed: %s", KEY_TESTING, xenstore_error_name(err));
}

static void answer_key(const char *path, enum proto_key key, int err)
{
    if (err == XSW_OK)
        return;
    console_printf("write %s refused: %s", path, xenstore_error_name(err));
    proto_write_refused(&proto, key);
}

/* Steps 1-4 of the effects contract (protocol.h); returns the action for the caller. */
static enum proto_action apply_effects(const struct proto_effects *fx)
{
    int err = XSW_OK;

    switch (fx->shutdown_reply) {
    case PROTO_REPLY_UNTOUCHED:
        break;
    case PROTO_REPLY_CLEAR:
        err = xenstore_write(KEY_SHUTDOWN, "", 0);
        break;
    case PROTO_REPLY_DELETE:
        err = xenstore_remove(KEY_SHUTDOWN);
        if (err == XSW_ENOENT)
            err = XSW_OK;
        break;
    case PROTO_REPLY_WRITE:
        err = xenstore_write(KEY_SHUTDOWN, fx->shutdown_value, fx->shutdown_value_len);
        break;
    }
    answer_key(KEY_SHUTDOWN, PROTO_KEY_SHUTDOWN, err);
    if (fx->ack_testing)
        answer_key(KEY_TESTING, PROTO_KEY_TESTING, xenstore_write(KEY_TESTING, "", 0));

    console_write(fx->console, fx->console_len);

    if (fx->update_state)
        write_status("state", fx->state, kstrlen(fx->state));
    if (fx->update_armed)
        write_status("armed", fx->armed, fx->armed_len);
    if (fx->update_last_error)
        write_status("last-error", fx->last_error, fx->last_error_len);

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
    proto_status(&proto, &effects);
    apply_effects(&effects);
    console_printf("ready");
    start_heartbeat();
}

static void suspend_domain(void)
{
    /* Section 4: rings' MFNs become PFNs, shared info is unmapped, then SCHEDOP_shutdown. */
    xenstore_suspend();
    console_suspend();
    shared_info_suspend();

    long rc = hypervisor_suspend(virt_to_mfn(xen_start_info));
    bool new_domain = rc == 0;

    shared_info_resume();
    memory_resume(new_domain);
    console_resume(new_domain);
    xenstore_resume(new_domain);

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
    proto_on_resume(&proto, new_domain, &effects);
    apply_effects(&effects);
    announce_ready();
    /* Whatever arrived while we were away: read both keys again. */
    xenstore_queue_event(WATCH_SHUTDOWN);
    xenstore_queue_event(WATCH_TESTING);
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

static void handle_watch(int id)
{
    const char *path = id == WATCH_SHUTDOWN ? KEY_SHUTDOWN : KEY_TESTING;
    size_t len = 0;
    int err = xenstore_read(path, key_value, sizeof(key_value), &len);

    if (err != XSW_OK && err != XSW_ENOENT) {
        console_printf("read %s failed: %s", path, xenstore_error_name(err));
        return;
    }
    if (id == WATCH_SHUTDOWN)
        proto_on_shutdown(&proto, key_value, len, err == XSW_OK, &effects);
    else
        proto_on_testing(&proto, key_value, len, err == XSW_OK, &effects);
    perform(apply_effects(&effects));
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
    for (size_t i = 0; i < FEATURE_KEYS; i++)
        kernel.feature_refusal_logged[i] = false;
    kernel.status_refusals_logged = 0;
}

void kernel_main(void)
{
    boot_init();
    shared_info_init();
    console_init();
    xenstore_init();
    memory_publish_p2m();

    kernel.domid = read_domid();
    console_printf("xen-test-vm %s (revision %s) mode pv domid %ld memory %lu KiB", XTV_VERSION,
                   XTV_SOURCE_REVISION, kernel.domid,
                   (unsigned long)xen_start_info->nr_pages * 4);
    kernel.heartbeat_ns = heartbeat_from_cmdline();

    proto_init(&proto);
    register_watches();
    advertise_features();
    announce_ready();
    fault_on_request();

    for (;;) {
        int id;

        xenstore_poll_ring();
        while ((id = xenstore_next_event()) >= 0)
            handle_watch(id);
        heartbeat();
        evtchn_port_t port = xenstore_port();
        evtchn_poll(&port, 1, kernel.next_tick_ns);
    }
}
