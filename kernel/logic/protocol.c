/*
 * The guest protocol's decisions, grouped in PROTOCOL.md's section order so that each rule is
 * found where the document states it: see protocol.h for the contract with the Xen side and the
 * interpretations recorded there.
 */
#include "protocol.h"

#include "kstring.h"

/* --- used by every section below ------------------------------------------------------------ */

/* One event's output under construction. */
struct event {
    struct proto *p;
    struct proto_effects *out;
    struct kbuf console;
};

/* Defined in their sections below; the sections before them need them already. */
static const char *state_name(const struct proto *p);
static void status_state(struct event *ev);
static void status_armed(struct event *ev);
static void status_last_error(struct event *ev);
static void fire_armed(struct event *ev);
static void cancel_steps(struct event *ev);

static bool same_value(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && kmemcmp(a, b, a_len) == 0;
}

/* Remember at most PROTO_VALUE_MAX bytes; xenstore never delivers more. */
static size_t remember(char *dst, const char *value, size_t len)
{
    if (len > PROTO_VALUE_MAX)
        len = PROTO_VALUE_MAX;
    kmemcpy(dst, value, len);
    return len;
}

static void begin(struct event *ev, struct proto *p, struct proto_effects *out)
{
    ev->p = p;
    ev->out = out;
    out->shutdown_reply = PROTO_REPLY_UNTOUCHED;
    out->shutdown_value = NULL;
    out->shutdown_value_len = 0;
    out->ack_testing = false;
    out->update_state = false;
    out->state = state_name(p);
    out->update_armed = false;
    out->armed = p->armed_json;
    out->armed_len = 0;
    out->update_last_error = false;
    out->last_error = p->last_error;
    out->last_error_len = 0;
    out->action = PROTO_ACTION_NONE;
    out->wait = PROTO_WAIT_NONE;
    out->wait_ms = 0;
    out->wait_forever = false;
    out->cancel_timer = false;
    out->answer_if_unchanged = false;
    out->expect_value = NULL;
    out->expect_len = 0;
    out->xs_nodes = out->xs_watches = out->balloon_percent = PROTO_KEEP;
    kbuf_init(&ev->console, out->console, sizeof(out->console));
}

static void end(struct event *ev)
{
    ev->out->console_len = ev->console.len;
}

static void log_line(struct event *ev, const char *prefix, const char *value, size_t len)
{
    kbuf_puts(&ev->console, prefix);
    kbuf_put_printable(&ev->console, value, len, PROTO_LOG_VALUE_MAX);
    kbuf_putc(&ev->console, '\n');
}

/* --- 1. Boot -------------------------------------------------------------------------------- */

void proto_init(struct proto *p)
{
    p->armed = false;
    p->armed_ack = PROTO_ACK_OK;
    p->armed_word = PROTO_WORD_IGNORE;
    p->armed_ack_string_len = 0;
    p->armed_json_len = 0;
    p->armed_json[0] = '\0';
    p->armed_timing = (struct proto_timing){0};
    p->phase = PROTO_PHASE_IDLE;
    p->pending_answers = false;
    p->suspending = false;
    p->shutdown_left = PROTO_LEFT_NOTHING;
    p->shutdown_own_write = false;
    p->shutdown_after_resume = false;
    p->shutdown_seen_len = 0;
    p->shutdown_reply_len = 0;
    p->testing_left = PROTO_LEFT_NOTHING;
    p->testing_seen_len = 0;
    p->last_error_len = 0;
    p->last_error[0] = '\0';
}

/* --- 2. control/shutdown: requests from the toolstack --------------------------------------- */

/* The words of `action` and control/shutdown, in enum proto_word order; `ignore` is a tester's
 * word only: as a control/shutdown value it is an unknown request (section 2). */
static const char *const word_names[] = {
    [PROTO_WORD_POWEROFF] = "poweroff", [PROTO_WORD_HALT] = "halt",
    [PROTO_WORD_REBOOT] = "reboot",     [PROTO_WORD_CRASH] = "crash",
    [PROTO_WORD_SUSPEND] = "suspend",   [PROTO_WORD_IGNORE] = "ignore",
};
#define WORD_COUNT (sizeof(word_names) / sizeof(word_names[0]))

static bool find_word(const char *s, size_t len, enum proto_word *word)
{
    for (unsigned i = 0; i < WORD_COUNT; i++) {
        if (kstreq(s, len, word_names[i])) {
            *word = (enum proto_word)i;
            return true;
        }
    }
    return false;
}

static enum proto_action word_action(enum proto_word word)
{
    switch (word) {
    case PROTO_WORD_POWEROFF:
    case PROTO_WORD_HALT:
        return PROTO_ACTION_POWEROFF;
    case PROTO_WORD_REBOOT:
        return PROTO_ACTION_REBOOT;
    case PROTO_WORD_CRASH:
        return PROTO_ACTION_CRASH;
    case PROTO_WORD_SUSPEND:
        return PROTO_ACTION_SUSPEND;
    case PROTO_WORD_IGNORE:
        break;
    }
    return PROTO_ACTION_NONE;
}

/* What the console says right before acting: the last line a tester sees of this instance. */
static const char *action_line(enum proto_action action)
{
    switch (action) {
    case PROTO_ACTION_POWEROFF:
        return "powering off";
    case PROTO_ACTION_REBOOT:
        return "rebooting";
    case PROTO_ACTION_CRASH:
        return "crashing";
    case PROTO_ACTION_SUSPEND:
        return "suspending";
    case PROTO_ACTION_NONE:
        break;
    }
    return "ignoring";
}

const char *proto_action_name(enum proto_action action)
{
    switch (action) {
    case PROTO_ACTION_POWEROFF:
        return "poweroff";
    case PROTO_ACTION_REBOOT:
        return "reboot";
    case PROTO_ACTION_CRASH:
        return "crash";
    case PROTO_ACTION_SUSPEND:
        return "suspend";
    case PROTO_ACTION_NONE:
        break;
    }
    return "none";
}

static void perform(struct event *ev, enum proto_action action)
{
    kbuf_puts(&ev->console, action_line(action));
    kbuf_putc(&ev->console, '\n');
    ev->out->action = action;
    if (action == PROTO_ACTION_SUSPEND) {
        ev->p->suspending = true;
        status_state(ev);
    }
}

/* Is this event the echo of something we did rather than a request (protocol.h)? */
static bool echo_of_ours(struct proto *p, const char *value, size_t len)
{
    bool own_write = p->shutdown_own_write, after_resume = p->shutdown_after_resume;

    p->shutdown_own_write = false;
    p->shutdown_after_resume = false;
    bool reply_there = p->shutdown_left == PROTO_LEFT_REPLY &&
                       same_value(value, len, p->shutdown_reply, p->shutdown_reply_len);
    if (own_write && reply_there)
        return true;
    if (!after_resume)
        return false;
    return reply_there || (p->shutdown_left == PROTO_LEFT_SEEN &&
                           same_value(value, len, p->shutdown_seen, p->shutdown_seen_len));
}

void proto_on_shutdown(struct proto *p, const char *value, size_t len, bool present,
                       struct proto_effects *out)
{
    struct event ev;
    enum proto_word word;

    begin(&ev, p, out);
    if (!present || len == 0) {
        /* Not a request (our own acknowledgement, or the key went away): the key changed. */
        p->shutdown_left = PROTO_LEFT_NOTHING;
        p->shutdown_own_write = false;
        p->shutdown_after_resume = false;
        goto done;
    }
    if (echo_of_ours(p, value, len))
        goto done;
    p->shutdown_left = PROTO_LEFT_NOTHING;
    p->shutdown_seen_len = remember(p->shutdown_seen, value, len);
    cancel_steps(&ev);

    if (p->armed) {
        log_line(&ev, "shutdown request: ", value, len);
        fire_armed(&ev);
    } else if (find_word(value, len, &word) && word != PROTO_WORD_IGNORE) {
        log_line(&ev, "shutdown request: ", value, len);
        out->shutdown_reply = PROTO_REPLY_CLEAR;
        perform(&ev, word_action(word));
    } else {
        log_line(&ev, "unknown shutdown request: ", value, len);
        out->shutdown_reply = PROTO_REPLY_CLEAR;
    }
done:
    end(&ev);
}

/* --- 3. control/testing: instructions from the tester --------------------------------------- */

/* A decoded, valid control/testing message. */
struct message {
    bool now;
    enum proto_word word;
    enum proto_ack ack;
    const char *ack_string;
    size_t ack_string_len;
    struct proto_timing timing;
    unsigned xs_nodes, xs_watches; /* section 8; PROTO_KEEP when absent */
    unsigned balloon_percent;      /* section 9; PROTO_KEEP when absent */
};

/* Why a message is invalid, into p->last_error. Values quoted from the message are cut short. */
static bool reject(struct proto *p, const char *what, const char *name, const char *value,
                   size_t value_len)
{
    struct kbuf b;

    kbuf_init(&b, p->last_error, sizeof(p->last_error));
    kbuf_puts(&b, what);
    kbuf_puts(&b, name);
    if (value) {
        kbuf_puts(&b, ": ");
        kbuf_put_printable(&b, value, value_len, 64);
    }
    p->last_error_len = b.len;
    return false;
}

static bool reject_json(struct proto *p, const struct json_doc *doc)
{
    struct kbuf b;

    kbuf_init(&b, p->last_error, sizeof(p->last_error));
    kbuf_puts(&b, doc->error);
    if (doc->error_byte >= 0) {
        kbuf_puts(&b, " 0x");
        kbuf_put_hex(&b, (unsigned)doc->error_byte, 2);
    }
    kbuf_puts(&b, " at offset ");
    kbuf_put_u64(&b, doc->error_offset);
    p->last_error_len = b.len;
    return false;
}

/* The field `name` as a string: present once, of type string. */
static bool string_field(struct proto *p, const char *name, const struct json_member **m)
{
    size_t n = json_count(&p->doc, name);

    if (n == 0)
        return reject(p, "missing field: ", name, NULL, 0);
    if (n > 1)
        return reject(p, "duplicate field: ", name, NULL, 0);
    *m = json_find(&p->doc, name);
    if ((*m)->type != JSON_STRING) {
        const char *type = json_type_name((*m)->type);

        return reject(p, "field ", name, type, kstrlen(type));
    }
    return true;
}

/*
 * Sections 7 and 8: an optional field of whole numbers, 0..max; with `forever`, the string
 * "forever" too. Absent: *value is left as it is.
 */
static bool number_field(struct proto *p, const char *name, unsigned max, unsigned *value,
                         bool *forever)
{
    const struct json_member *m = json_find(&p->doc, name);
    unsigned n = 0;

    if (!m)
        return true;
    if (json_count(&p->doc, name) > 1)
        return reject(p, "duplicate field: ", name, NULL, 0);
    if (forever && m->type == JSON_STRING && kstreq(m->str, m->str_len, "forever")) {
        *forever = true;
        return true;
    }
    if (m->type != JSON_NUMBER) {
        const char *type = json_type_name(m->type);

        return reject(p, "field ", name, type, kstrlen(type));
    }
    /* Seven digits hold both maxima; anything longer, signed or fractional is out. */
    bool whole = m->str_len <= 7;

    for (size_t i = 0; whole && i < m->str_len; i++) {
        whole = m->str[i] >= '0' && m->str[i] <= '9';
        n = n * 10 + (unsigned)(m->str[i] - '0');
    }
    if (!whole || n > max)
        return reject(p, "bad ", name, m->str, m->str_len);
    *value = n;
    return true;
}

static bool ms_field(struct proto *p, const char *name, unsigned *ms, bool *forever)
{
    return number_field(p, name, PROTO_DELAY_MAX_MS, ms, forever);
}

static bool read_timing(struct proto *p, bool now, struct proto_timing *t)
{
    *t = (struct proto_timing){0};
    if (!ms_field(p, "hang_ms", &t->hang_ms, &t->hang_forever))
        return false;
    /* Like ack, ack_delay_ms means nothing with now and is not even looked at. */
    if (!now && !ms_field(p, "ack_delay_ms", &t->ack_delay_ms, NULL))
        return false;
    return ms_field(p, "action_delay_ms", &t->action_delay_ms, NULL);
}

/* Sections 8 and 9: read with either `when`; they are not part of the instruction. */
static bool read_pressure(struct proto *p, struct message *msg)
{
    msg->xs_nodes = msg->xs_watches = msg->balloon_percent = PROTO_KEEP;
    return number_field(p, "xs_nodes", PROTO_PRESSURE_MAX, &msg->xs_nodes, NULL) &&
           number_field(p, "xs_watches", PROTO_PRESSURE_MAX, &msg->xs_watches, NULL) &&
           number_field(p, "balloon_percent", 100, &msg->balloon_percent, NULL);
}

static bool read_message(struct proto *p, const char *value, size_t len, struct message *msg)
{
    const struct json_member *when, *action, *ack;

    if (json_parse_object(value, len, &p->doc))
        return reject_json(p, &p->doc);

    if (!string_field(p, "when", &when))
        return false;
    if (kstreq(when->str, when->str_len, "now"))
        msg->now = true;
    else if (kstreq(when->str, when->str_len, "onshutdown"))
        msg->now = false;
    else
        return reject(p, "unknown ", "when", when->str, when->str_len);

    if (!string_field(p, "action", &action))
        return false;
    if (!find_word(action->str, action->str_len, &msg->word))
        return reject(p, "unknown ", "action", action->str, action->str_len);

    msg->ack = PROTO_ACK_OK;
    msg->ack_string = NULL;
    msg->ack_string_len = 0;
    /* ack is ignored with now, whatever it holds. */
    if (!msg->now) {
        if (!string_field(p, "ack", &ack))
            return false;
        /* "" is an ack string like any other: writing it is the normal acknowledgement. */
        if (kstreq(ack->str, ack->str_len, "ok")) {
            msg->ack = PROTO_ACK_OK;
        } else if (kstreq(ack->str, ack->str_len, "none")) {
            msg->ack = PROTO_ACK_NONE;
        } else if (kstreq(ack->str, ack->str_len, "delete")) {
            msg->ack = PROTO_ACK_DELETE;
        } else {
            msg->ack = PROTO_ACK_STRING;
            msg->ack_string = ack->str;
            msg->ack_string_len = ack->str_len;
        }
    }
    return read_timing(p, msg->now, &msg->timing) && read_pressure(p, msg);
}

static const char *ack_word(enum proto_ack ack)
{
    switch (ack) {
    case PROTO_ACK_NONE:
        return "none";
    case PROTO_ACK_DELETE:
        return "delete";
    case PROTO_ACK_OK:
    case PROTO_ACK_STRING:
        break;
    }
    return "ok";
}

/* The timed fields of the canonical JSON, those that are not 0, in section 7's order. */
static void put_timing(struct kbuf *json, const struct proto_timing *t)
{
    if (t->hang_forever) {
        kbuf_puts(json, ",\"hang_ms\":\"forever\"");
    } else if (t->hang_ms) {
        kbuf_puts(json, ",\"hang_ms\":");
        kbuf_put_u64(json, t->hang_ms);
    }
    if (t->ack_delay_ms) {
        kbuf_puts(json, ",\"ack_delay_ms\":");
        kbuf_put_u64(json, t->ack_delay_ms);
    }
    if (t->action_delay_ms) {
        kbuf_puts(json, ",\"action_delay_ms\":");
        kbuf_put_u64(json, t->action_delay_ms);
    }
}

static void arm(struct event *ev, const struct message *msg)
{
    struct proto *p = ev->p;
    struct kbuf json;

    p->armed = true;
    p->armed_word = msg->word;
    p->armed_ack = msg->ack;
    p->armed_ack_string_len = remember(p->armed_ack_string, msg->ack_string, msg->ack_string_len);
    p->armed_timing = msg->timing;

    /* Canonical form: never longer than the message it came from (escapes only shrink or stay). */
    kbuf_init(&json, p->armed_json, sizeof(p->armed_json));
    kbuf_puts(&json, "{\"when\":\"onshutdown\",\"ack\":");
    if (msg->ack == PROTO_ACK_STRING)
        kbuf_put_json_string(&json, msg->ack_string, msg->ack_string_len);
    else
        kbuf_put_json_string(&json, ack_word(msg->ack), kstrlen(ack_word(msg->ack)));
    kbuf_puts(&json, ",\"action\":\"");
    kbuf_puts(&json, word_names[msg->word]);
    kbuf_putc(&json, '"');
    /* A message is never shorter than its timed fields written back without spaces. */
    put_timing(&json, &msg->timing);
    kbuf_putc(&json, '}');
    p->armed_json_len = json.len;

    log_line(ev, "armed: ", p->armed_json, p->armed_json_len);
    status_armed(ev);
    status_state(ev);
}

static void disarm(struct event *ev)
{
    struct proto *p = ev->p;

    if (!p->armed)
        return;
    log_line(ev, "disarmed: ", p->armed_json, p->armed_json_len);
    p->armed = false;
    p->armed_json_len = 0;
    status_armed(ev);
    status_state(ev);
}

/* Answer the request that fired an instruction, as its ack says (section 3). */
static void answer(struct event *ev, enum proto_ack ack, const char *ack_string,
                   size_t ack_string_len)
{
    struct proto *p = ev->p;
    struct proto_effects *out = ev->out;

    switch (ack) {
    case PROTO_ACK_OK:
        out->shutdown_reply = PROTO_REPLY_CLEAR;
        break;
    case PROTO_ACK_NONE:
        out->shutdown_reply = PROTO_REPLY_UNTOUCHED;
        p->shutdown_left = PROTO_LEFT_SEEN;
        break;
    case PROTO_ACK_DELETE:
        out->shutdown_reply = PROTO_REPLY_DELETE;
        break;
    case PROTO_ACK_STRING:
        if (ack_string_len == 0) {
            out->shutdown_reply = PROTO_REPLY_CLEAR;
            break;
        }
        kmemcpy(p->shutdown_reply, ack_string, ack_string_len);
        p->shutdown_reply_len = ack_string_len;
        out->shutdown_reply = PROTO_REPLY_WRITE;
        out->shutdown_value = p->shutdown_reply;
        out->shutdown_value_len = p->shutdown_reply_len;
        p->shutdown_left = PROTO_LEFT_REPLY;
        p->shutdown_own_write = true;
        break;
    }
}

static void log_ms(struct event *ev, const char *prefix, unsigned ms, const char *suffix)
{
    kbuf_puts(&ev->console, prefix);
    kbuf_put_u64(&ev->console, ms);
    kbuf_puts(&ev->console, suffix);
    kbuf_putc(&ev->console, '\n');
}

/*
 * Section 7: run the steps of the instruction in armed_* that follow the wait `done` (IDLE: it
 * has just fired or started), until one has to wait (hang, delay) or the action ends it. An
 * acknowledgement after a wait must not wipe a request written meanwhile.
 */
static void run_steps(struct event *ev, enum proto_phase done)
{
    struct proto *p = ev->p;
    struct proto_effects *out = ev->out;
    const struct proto_timing *t = &p->armed_timing;

    if (done < PROTO_PHASE_HANG && (t->hang_ms || t->hang_forever)) {
        if (t->hang_forever)
            kbuf_puts(&ev->console, "hanging for good\n");
        else
            log_ms(ev, "hanging for ", t->hang_ms, " ms");
        out->wait = PROTO_WAIT_HANG;
        out->wait_ms = t->hang_ms;
        out->wait_forever = t->hang_forever;
        p->phase = PROTO_PHASE_HANG;
        return;
    }
    if (p->pending_answers) {
        if (done < PROTO_PHASE_ACK && t->ack_delay_ms) {
            log_ms(ev, "acknowledging in ", t->ack_delay_ms, " ms");
            out->wait = PROTO_WAIT_TIMER;
            out->wait_ms = t->ack_delay_ms;
            p->phase = PROTO_PHASE_ACK;
            return;
        }
        answer(ev, p->armed_ack, p->armed_ack_string, p->armed_ack_string_len);
        p->pending_answers = false;
        if (done != PROTO_PHASE_IDLE && out->shutdown_reply != PROTO_REPLY_UNTOUCHED) {
            out->answer_if_unchanged = true;
            out->expect_value = p->shutdown_seen;
            out->expect_len = p->shutdown_seen_len;
        }
    }
    if (done < PROTO_PHASE_ACTION && t->action_delay_ms) {
        kbuf_puts(&ev->console, "delaying ");
        kbuf_puts(&ev->console, word_names[p->armed_word]);
        log_ms(ev, " by ", t->action_delay_ms, " ms");
        out->wait = PROTO_WAIT_TIMER;
        out->wait_ms = t->action_delay_ms;
        p->phase = PROTO_PHASE_ACTION;
        return;
    }
    p->phase = PROTO_PHASE_IDLE;
    perform(ev, word_action(p->armed_word));
}

/* A request or a valid message ends the timed steps still pending (section 7). */
static void cancel_steps(struct event *ev)
{
    struct proto *p = ev->p;

    if (p->phase == PROTO_PHASE_IDLE)
        return;
    kbuf_puts(&ev->console, "timed ");
    kbuf_puts(&ev->console, word_names[p->armed_word]);
    kbuf_puts(&ev->console, " cancelled\n");
    p->phase = PROTO_PHASE_IDLE;
    p->pending_answers = false;
    ev->out->cancel_timer = true;
}

static void fire_armed(struct event *ev)
{
    struct proto *p = ev->p;

    log_line(ev, "armed instruction fires: ", p->armed_json, p->armed_json_len);
    /* One-shot: the instruction is gone before its action runs. */
    p->armed = false;
    p->armed_json_len = 0;
    status_armed(ev);
    status_state(ev);
    p->pending_answers = true;
    run_steps(ev, PROTO_PHASE_IDLE);
}

void proto_on_testing(struct proto *p, const char *value, size_t len, bool present,
                      struct proto_effects *out)
{
    struct event ev;
    struct message msg = { .now = false, .word = PROTO_WORD_IGNORE, .ack = PROTO_ACK_OK };

    begin(&ev, p, out);
    if (!present || len == 0) {
        /* Our own acknowledgement, a deletion, or nothing yet: not a message. */
        p->testing_left = PROTO_LEFT_NOTHING;
        goto done;
    }
    if (p->testing_left == PROTO_LEFT_SEEN &&
        same_value(value, len, p->testing_seen, p->testing_seen_len))
        goto done;
    p->testing_left = PROTO_LEFT_NOTHING;
    p->testing_seen_len = remember(p->testing_seen, value, len);
    out->ack_testing = true;

    if (!read_message(p, value, len, &msg)) {
        /* last_error is printable already (reasons quote values through put_printable). */
        kbuf_puts(&ev.console, "bogus command: ");
        kbuf_putn(&ev.console, p->last_error, p->last_error_len);
        kbuf_putc(&ev.console, '\n');
        status_last_error(&ev);
        goto done;
    }
    out->xs_nodes = msg.xs_nodes;
    out->xs_watches = msg.xs_watches;
    out->balloon_percent = msg.balloon_percent;
    /* A valid message replaces the armed one, whatever it says, and ends timed steps. */
    cancel_steps(&ev);
    disarm(&ev);
    if (msg.now) {
        kbuf_puts(&ev.console, "testing: now ");
        kbuf_puts(&ev.console, word_names[msg.word]);
        kbuf_putc(&ev.console, '\n');
        /* The instruction whose steps run: disarm() left armed_* free for it. */
        p->armed_word = msg.word;
        p->armed_timing = msg.timing;
        run_steps(&ev, PROTO_PHASE_IDLE);
    } else {
        arm(&ev, &msg);
    }
done:
    end(&ev);
}

/* --- 4. Suspend, resume, checkpoint, migration ---------------------------------------------- */

void proto_on_resume(struct proto *p, bool new_domain, struct proto_effects *out)
{
    p->suspending = false;
    /* Only the last step (the action) suspends, so nothing timed is pending; make sure. */
    p->phase = PROTO_PHASE_IDLE;
    p->pending_answers = false;
    if (new_domain) {
        /* The re-registered watch fires once: not a request if it finds what we left. */
        p->shutdown_after_resume = p->shutdown_left != PROTO_LEFT_NOTHING;
        p->testing_left = PROTO_LEFT_NOTHING;
    }
    proto_status(p, out);
}

/* --- 5. Status in xenstore ------------------------------------------------------------------ */

static const char *state_name(const struct proto *p)
{
    if (p->suspending)
        return "suspending";
    return p->armed ? "armed" : "ready";
}

static void status_state(struct event *ev)
{
    ev->out->update_state = true;
    ev->out->state = state_name(ev->p);
}

static void status_armed(struct event *ev)
{
    ev->out->update_armed = true;
    ev->out->armed = ev->p->armed_json;
    ev->out->armed_len = ev->p->armed ? ev->p->armed_json_len : 0;
}

static void status_last_error(struct event *ev)
{
    ev->out->update_last_error = true;
    ev->out->last_error = ev->p->last_error;
    ev->out->last_error_len = ev->p->last_error_len;
}

void proto_status(const struct proto *p, struct proto_effects *out)
{
    struct event ev;

    /* begin() only reads p; the cast keeps one event type for both directions. */
    begin(&ev, (struct proto *)p, out);
    status_state(&ev);
    status_armed(&ev);
    status_last_error(&ev);
    end(&ev);
}

/* --- 6. Who may write what ------------------------------------------------------------------ */

void proto_write_refused(struct proto *p, enum proto_key key)
{
    /* The value we read is still in the key; our own write will cause no event. */
    if (key == PROTO_KEY_TESTING) {
        p->testing_left = PROTO_LEFT_SEEN;
    } else {
        p->shutdown_left = PROTO_LEFT_SEEN;
        p->shutdown_own_write = false;
    }
}

/* --- 7. Timed behaviour (version 1.2) ----------------------------------------------------- */

void proto_on_timer(struct proto *p, struct proto_effects *out)
{
    struct event ev;

    begin(&ev, p, out);
    if (p->phase == PROTO_PHASE_HANG)
        kbuf_puts(&ev.console, "hang over\n");
    if (p->phase != PROTO_PHASE_IDLE)
        run_steps(&ev, p->phase);
    end(&ev);
}

void proto_on_answer_lost(struct proto *p, struct proto_effects *out)
{
    struct event ev;

    begin(&ev, p, out);
    kbuf_puts(&ev.console, "request gone before the late acknowledgement: ");
    kbuf_puts(&ev.console, word_names[p->armed_word]);
    kbuf_puts(&ev.console, " dropped\n");
    p->phase = PROTO_PHASE_IDLE;
    p->pending_answers = false;
    end(&ev);
}
