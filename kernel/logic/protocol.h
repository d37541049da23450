/*
 * The guest protocol (PROTOCOL.md sections 2, 3 and 5, and the timed behaviour of section 7,
 * version 1.2) as a pure state machine.
 * docs/PROTOCOL-NOTES.md records, for people, every choice PROTOCOL.md leaves open and how
 * this machine makes it.
 *
 * Why pure: every rule here has to be checked exhaustively, and that is only cheap on the host
 * (unit tests, fuzzing). The Xen side owns all I/O: it reads control/shutdown and
 * control/testing whenever their watches fire, hands the value (or "missing") to
 * proto_on_shutdown / proto_on_testing, and carries out the returned effects in this order:
 *
 *   1. answer the keys: control/shutdown as effects.shutdown_reply says, control/testing with ""
 *      when effects.ack_testing (PROTOCOL.md: acknowledge first);
 *   2. write the status keys flagged update_* under data/test-vm/;
 *   3. print effects.console (whole lines, each ending in '\n') — after the status keys, so a
 *      tester that has seen a line reads status that is already current;
 *   4. flush the console (the last lines before a shutdown must not be lost);
 *   5. perform effects.action;
 *   5a. (section 8) hand effects.xs_nodes / xs_watches, when either is not PROTO_KEEP, to
 *      pressure_request() (logic/pressure.h), which the main loop works through;
 *   5b. (section 9) when effects.balloon_percent is not PROTO_KEEP, make it the balloon's
 *      percent and answer memory/target again;
 *   6. wait as effects.wait says (section 7): PROTO_WAIT_HANG — flush the console, then touch
 *      neither xenstore nor the console for wait_ms (or for good), then call proto_on_timer;
 *      PROTO_WAIT_TIMER — carry on serving events and call proto_on_timer once wait_ms have
 *      passed, unless an effects.cancel_timer comes first. There is one timer at a time; an
 *      effects never holds both an action and a wait.
 *
 * A timed acknowledgement (the effects of proto_on_timer with answer_if_unchanged) is written
 * only if control/shutdown still holds expect_value (the request it answers), in a transaction
 * that read it; if the key holds anything else, the Xen side throws the decision away and calls
 * proto_on_answer_lost instead.
 *
 * Step 1 happens inside the xenstore transaction that read the key (PROTOCOL.md 2, 3): when it
 * fails with EAGAIN the Xen side throws the decision away (it runs the machine on a copy of
 * struct proto) and decides again on what it reads next.
 *
 * If a write in step 1 is refused (EACCES, PROTOCOL.md section 6), the Xen side logs it and calls
 * proto_write_refused(): the value read stays in the key.
 *
 * Which control/shutdown events are requests (PROTOCOL.md 2, the retry rule): every event that
 * finds a non-empty value, the same value again included (toolstacks retry by rewriting it).
 * The Xen side makes events queued before its read count as one (xs_client.h). Not requests:
 *  - the event of our own write of an ack string: the first event after it that still finds
 *    that string;
 *  - after a resume into a new domain, the first event (the re-registered watch fires once)
 *    while the key still holds what we consumed before the suspend and left there (ack none,
 *    an ack string, a refused acknowledgement).
 * control/testing is read the same way, but a message whose acknowledgement was refused is not
 * processed again while it stays in the key: a tester never retries by rewriting.
 *
 * Interpretation recorded here, as PROTOCOL.md leaves it open:
 *  - "the next non-empty control/shutdown request" fires an armed instruction whatever its
 *    value, including values that would otherwise be unknown;
 *  - a valid `when: now` message also replaces (so: removes) an armed instruction; the
 *    message {"when":"now","action":"ignore"} therefore disarms;
 *  - data/test-vm/last-error keeps the reason of the last invalid message even after later
 *    valid ones (it is "the last error", empty until the first one);
 *  - duplicated known fields ("when", "action", and "ack" with onshutdown) are invalid, as the
 *    message would be ambiguous;
 *  - the canonical JSON in data/test-vm/armed keeps the tester's words (`halt` stays `halt`),
 *    with the fields in the order when, ack, action.
 */
#ifndef XTV_PROTOCOL_H
#define XTV_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"

/* Limits: a xenstore payload is at most 4096 bytes, so no value we read or write is longer. */
#define PROTO_VALUE_MAX 4096
#define PROTO_CONSOLE_MAX 1024
#define PROTO_ERROR_MAX 256
/* Values quoted in console lines are cut here so one event never floods the 2 KiB console ring. */
#define PROTO_LOG_VALUE_MAX 160

/* What the Xen side must do to the domain. `halt` maps to POWEROFF, `ignore` to NONE. */
enum proto_action {
    PROTO_ACTION_NONE,
    PROTO_ACTION_POWEROFF,
    PROTO_ACTION_REBOOT,
    PROTO_ACTION_CRASH,
    PROTO_ACTION_SUSPEND,
};

/* Section 7 (1.2): the longest delay or hang a message may ask for. */
#define PROTO_DELAY_MAX_MS 3600000u

/* Section 8 (1.2): the most nodes or watches a message may ask for, and "not asked". */
#define PROTO_PRESSURE_MAX 100000u
#define PROTO_KEEP (~0u)

/* What to do after the action step (step 6 above). */
enum proto_wait {
    PROTO_WAIT_NONE,
    PROTO_WAIT_HANG,  /* no I/O at all for wait_ms (wait_forever: never again) */
    PROTO_WAIT_TIMER, /* keep serving; proto_on_timer after wait_ms */
};

/* How to answer control/shutdown. */
enum proto_reply {
    PROTO_REPLY_UNTOUCHED, /* leave the key alone (also: nothing to answer) */
    PROTO_REPLY_CLEAR,     /* write "" : the normal acknowledgement */
    PROTO_REPLY_DELETE,    /* remove the key */
    PROTO_REPLY_WRITE,     /* write shutdown_value (shutdown_value_len bytes, no NUL) */
};

enum proto_key {
    PROTO_KEY_SHUTDOWN,
    PROTO_KEY_TESTING,
};

/*
 * The result of one event. Pointers refer to storage inside struct proto and stay valid until the
 * next call on that struct. Strings with a _len are not necessarily NUL-terminated; the others
 * are C strings.
 */
struct proto_effects {
    enum proto_reply shutdown_reply;
    const char *shutdown_value;
    size_t shutdown_value_len;

    bool ack_testing; /* write "" to control/testing */

    char console[PROTO_CONSOLE_MAX]; /* NUL-terminated too */
    size_t console_len;

    bool update_state; /* data/test-vm/state */
    const char *state; /* "ready", "armed" or "suspending" */
    bool update_armed; /* data/test-vm/armed */
    const char *armed;
    size_t armed_len; /* 0: write the empty string */
    bool update_last_error; /* data/test-vm/last-error */
    const char *last_error;
    size_t last_error_len;

    enum proto_action action;

    enum proto_wait wait;
    unsigned wait_ms;
    bool wait_forever;
    bool cancel_timer; /* a pending proto_on_timer is void */
    bool answer_if_unchanged; /* write shutdown_reply only if the key holds expect_value */
    const char *expect_value;
    size_t expect_len;

    /* Section 8: the xenstore pressure asked for (logic/pressure.h), PROTO_KEEP if not. */
    unsigned xs_nodes;
    unsigned xs_watches;
    /* Section 9: the balloon's new percent (logic/balloon.h), PROTO_KEEP if not asked. */
    unsigned balloon_percent;
};

/* The tester's words for `action`, kept for the canonical JSON and the console. */
enum proto_word {
    PROTO_WORD_POWEROFF,
    PROTO_WORD_HALT,
    PROTO_WORD_REBOOT,
    PROTO_WORD_CRASH,
    PROTO_WORD_SUSPEND,
    PROTO_WORD_IGNORE,
};

enum proto_ack {
    PROTO_ACK_OK,
    PROTO_ACK_NONE,
    PROTO_ACK_DELETE,
    PROTO_ACK_STRING,
};

/* Section 7: the timed steps of an instruction, in the order they run. */
struct proto_timing {
    unsigned hang_ms;
    bool hang_forever;
    unsigned ack_delay_ms;    /* onshutdown only */
    unsigned action_delay_ms;
};

/* Where a fired instruction with timed steps is (section 7), in the order the steps run: each
 * phase is the wait in progress, and the steps after it are still to come. */
enum proto_phase {
    PROTO_PHASE_IDLE,     /* nothing pending */
    PROTO_PHASE_HANG,     /* hanging; then the acknowledgement delay */
    PROTO_PHASE_ACK,      /* waiting to acknowledge; then the action delay */
    PROTO_PHASE_ACTION,   /* waiting to act */
};

/* What a key holds after we consumed a value in it without clearing it. */
enum proto_left {
    PROTO_LEFT_NOTHING, /* cleared, deleted, or changed since */
    PROTO_LEFT_SEEN,    /* the value we consumed (ack none, or our write was refused) */
    PROTO_LEFT_REPLY,   /* the string we wrote (ack "<string>") */
};


/*
 * All protocol state (about 25 KiB: every buffer is sized for the largest xenstore value, as no
 * allocation is possible). Deliberately kept across suspend/resume; proto_on_resume() says which
 * parts a new domain invalidates.
 */
struct proto {
    /* The armed instruction; once it fired (or a `now` message started), the one whose timed
     * steps run: a valid message or a request ends those steps before anything replaces it. */
    bool armed;
    enum proto_ack armed_ack;
    enum proto_word armed_word;
    char armed_ack_string[PROTO_VALUE_MAX];
    size_t armed_ack_string_len;
    char armed_json[PROTO_VALUE_MAX + 1]; /* + the NUL kbuf keeps */
    size_t armed_json_len;
    struct proto_timing armed_timing;

    /* Section 7: how far the instruction's timed steps are. */
    enum proto_phase phase;
    bool pending_answers; /* it fired on a request: the acknowledgement is still to come */

    bool suspending;

    enum proto_left shutdown_left;
    bool shutdown_own_write;    /* the event of our ack-string write is still to come */
    bool shutdown_after_resume; /* the next event is the re-registered watch's first */
    char shutdown_seen[PROTO_VALUE_MAX];
    size_t shutdown_seen_len;
    char shutdown_reply[PROTO_VALUE_MAX];
    size_t shutdown_reply_len;

    enum proto_left testing_left;
    char testing_seen[PROTO_VALUE_MAX];
    size_t testing_seen_len;

    char last_error[PROTO_ERROR_MAX];
    size_t last_error_len;

    struct json_doc doc; /* the JSON reader's fixed budget */
};

/* --- 1. Boot -------------------------------------------------------------------------------- */

/* Boot: nothing armed, no error, state ready. */
void proto_init(struct proto *p);

/* --- 2. control/shutdown: requests from the toolstack --------------------------------------- */

const char *proto_action_name(enum proto_action action);

/*
 * control/shutdown changed (or its watch fired). present=false: the key is missing. value need
 * not be NUL-terminated; len may be up to PROTO_VALUE_MAX.
 */
void proto_on_shutdown(struct proto *p, const char *value, size_t len, bool present,
                       struct proto_effects *out);

/* --- 3. control/testing: instructions from the tester --------------------------------------- */

/* control/testing changed (or its watch fired). Same conventions as proto_on_shutdown. */
void proto_on_testing(struct proto *p, const char *value, size_t len, bool present,
                      struct proto_effects *out);

/* --- 4. Suspend, resume, checkpoint, migration ---------------------------------------------- */

/*
 * Back from SCHEDOP_shutdown(suspend). Call it after every SUSPEND action before any other event,
 * also when the hypercall fails (then as cancelled: nothing changed). new_domain=true (return 0:
 * restore/migration): the Xen side registers its watches again, and their first event is not a
 * request while control/shutdown holds what we left there. false (return 1: cancelled or
 * checkpoint): same keys, same watches, nothing is re-read. Fills `out` with every status key
 * (state back to ready or armed); the Xen side writes version and resumes itself.
 */
void proto_on_resume(struct proto *p, bool new_domain, struct proto_effects *out);

/* --- 5. Status in xenstore ------------------------------------------------------------------ */

/* Fill `out` with every status key (state, armed, last-error) and nothing else: for publishing at
 * boot and after a resume. */
void proto_status(const struct proto *p, struct proto_effects *out);

/* --- 6. Who may write what ------------------------------------------------------------------ */

/* The acknowledgement write to `key` from the last effects failed: what we read stays there
 * (for control/shutdown also when the answer was an ack string). */
void proto_write_refused(struct proto *p, enum proto_key key);

/* --- 7. Timed behaviour (version 1.2) ----------------------------------------------------- */

/* The hang or the timer of the last effects is over: the next timed step. */
void proto_on_timer(struct proto *p, struct proto_effects *out);

/* The timed acknowledgement could not be written: control/shutdown no longer holds the request
 * it answers. The instruction ends there, its action is dropped. */
void proto_on_answer_lost(struct proto *p, struct proto_effects *out);

#endif
