/*
 * Host driver for the pure kernel logic: reads one command per line on stdin, prints one JSON
 * object per command on stdout. The pytest tables (tests/kernel/test_host_units.py) talk to it,
 * so the expected outcomes live in one readable place on the Python side.
 *
 * Commands (values are hex, so any byte can be sent; an empty hex string is the empty value):
 *   reset                        proto_init
 *   status                       proto_status
 *   shutdown <hex> | shutdown-missing
 *   testing <hex>  | testing-missing
 *   refused shutdown|testing     proto_write_refused
 *   resume new|cancelled         proto_on_resume
 *   timer                        proto_on_timer (a hang or a delay is over)
 *   answer-lost                  proto_on_answer_lost
 *   json <hex>                   json_parse_object alone
 *   pressure-request N|- W|-     pressure_request (- : PROTO_KEEP)
 *   pressure-step [ERR]          pressure_next, then pressure_done with ERR (an xenstore error
 *                                name; none: success), e.g. ENOENT
 *   pressure-run N W ERR         steps until none: an ADD of node N or watch W and later ones
 *                                fail with ERR (a quota); prints the count of steps and the state
 *   pressure-resume new|cancelled
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "kstring.h"
#include "pressure.h"
#include "protocol.h"
#include "xs_client.h"

#define LINE_MAX_BYTES (64 * 1024)

static struct proto proto;
static struct proto_effects fx;
static struct json_doc doc;
static struct pressure pressure;
static char line[LINE_MAX_BYTES];
static char value[LINE_MAX_BYTES / 2];
/* Output of one command: console text and a JSON-escaped 4 KiB value fit easily. */
static char out_storage[64 * 1024];

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t unhex(const char *hex)
{
    size_t n = 0;

    while (hex[0] && hex[1]) {
        int hi = hex_digit(hex[0]), lo = hex_digit(hex[1]);

        if (hi < 0 || lo < 0) {
            fprintf(stderr, "driver: bad hex\n");
            exit(2);
        }
        value[n++] = (char)(hi * 16 + lo);
        hex += 2;
    }
    return n;
}

static void field_string(struct kbuf *b, const char *name, const char *s, size_t n)
{
    kbuf_puts(b, ",\"");
    kbuf_puts(b, name);
    kbuf_puts(b, "\":");
    kbuf_put_json_string(b, s, n);
}

static void print_effects(void)
{
    static const char *const replies[] = {
        [PROTO_REPLY_UNTOUCHED] = "untouched",
        [PROTO_REPLY_CLEAR] = "clear",
        [PROTO_REPLY_DELETE] = "delete",
        [PROTO_REPLY_WRITE] = "write",
    };
    struct kbuf b;

    kbuf_init(&b, out_storage, sizeof(out_storage));
    kbuf_puts(&b, "{\"reply\":\"");
    kbuf_puts(&b, replies[fx.shutdown_reply]);
    kbuf_putc(&b, '"');
    if (fx.shutdown_reply == PROTO_REPLY_WRITE)
        field_string(&b, "reply_value", fx.shutdown_value, fx.shutdown_value_len);
    kbuf_puts(&b, fx.ack_testing ? ",\"ack_testing\":true" : ",\"ack_testing\":false");
    if (fx.console_len != strlen(fx.console)) {
        fprintf(stderr, "driver: console_len disagrees with the text\n");
        exit(3);
    }
    field_string(&b, "console", fx.console, fx.console_len);
    if (fx.update_state)
        field_string(&b, "state", fx.state, strlen(fx.state));
    if (fx.update_armed)
        field_string(&b, "armed", fx.armed, fx.armed_len);
    if (fx.update_last_error)
        field_string(&b, "last_error", fx.last_error, fx.last_error_len);
    field_string(&b, "action", proto_action_name(fx.action), strlen(proto_action_name(fx.action)));
    /* Section 7's fields only when set, so the tables of 1.1 behaviour need not name them. */
    if (fx.wait != PROTO_WAIT_NONE) {
        field_string(&b, "wait", fx.wait == PROTO_WAIT_HANG ? "hang" : "timer",
                     fx.wait == PROTO_WAIT_HANG ? 4 : 5);
        kbuf_puts(&b, ",\"wait_ms\":");
        kbuf_put_u64(&b, fx.wait_ms);
        if (fx.wait_forever)
            kbuf_puts(&b, ",\"wait_forever\":true");
    }
    if (fx.cancel_timer)
        kbuf_puts(&b, ",\"cancel_timer\":true");
    if (fx.answer_if_unchanged)
        field_string(&b, "expect", fx.expect_value, fx.expect_len);
    /* Section 8's, likewise only when asked for. */
    if (fx.xs_nodes != PROTO_KEEP) {
        kbuf_puts(&b, ",\"xs_nodes\":");
        kbuf_put_u64(&b, fx.xs_nodes);
    }
    if (fx.xs_watches != PROTO_KEEP) {
        kbuf_puts(&b, ",\"xs_watches\":");
        kbuf_put_u64(&b, fx.xs_watches);
    }
    if (fx.balloon_percent != PROTO_KEEP) {
        kbuf_puts(&b, ",\"balloon_percent\":");
        kbuf_put_u64(&b, fx.balloon_percent);
    }
    kbuf_putc(&b, '}');
    if (b.truncated) {
        fprintf(stderr, "driver: output truncated\n");
        exit(3);
    }
    puts(out_storage);
}

static void print_json_result(const char *reason)
{
    struct kbuf b;

    kbuf_init(&b, out_storage, sizeof(out_storage));
    if (reason) {
        kbuf_puts(&b, "{\"error\":");
        kbuf_put_json_string(&b, reason, strlen(reason));
        kbuf_puts(&b, ",\"offset\":");
        kbuf_put_u64(&b, doc.error_offset);
        kbuf_puts(&b, ",\"byte\":");
        if (doc.error_byte < 0)
            kbuf_puts(&b, "null");
        else
            kbuf_put_u64(&b, (uint64_t)doc.error_byte);
        kbuf_putc(&b, '}');
    } else {
        kbuf_puts(&b, "{\"error\":null,\"members\":[");
        for (size_t i = 0; i < doc.count; i++) {
            const struct json_member *m = &doc.members[i];

            kbuf_puts(&b, i ? ",[" : "[");
            kbuf_put_json_string(&b, m->key, m->key_len);
            kbuf_puts(&b, ",\"");
            kbuf_puts(&b, json_type_name(m->type));
            kbuf_puts(&b, "\",");
            if (m->type == JSON_STRING)
                kbuf_put_json_string(&b, m->str, m->str_len);
            else
                kbuf_puts(&b, "null");
            kbuf_putc(&b, ']');
        }
        kbuf_puts(&b, "]}");
    }
    puts(out_storage);
}

static bool command(const char *cmd, const char *word);

/* The pressure state, with the step just taken (if any) and how many steps a run took. */
static void print_pressure(const struct pressure_step *step, long steps)
{
    static const char *const ops[] = {
        [PRESSURE_ADD] = "add", [PRESSURE_REMOVE] = "remove", [PRESSURE_CLEAR] = "clear",
        [PRESSURE_DONE] = "done",
    };
    char text[256];
    struct kbuf b;

    kbuf_init(&b, out_storage, sizeof(out_storage));
    snprintf(text, sizeof(text), "{\"target\":[%u,%u],\"held\":[%u,%u],\"busy\":%s,\"active\":%s",
             pressure.target[0], pressure.target[1], pressure.held[0], pressure.held[1],
             pressure.busy ? "true" : "false", pressure.active ? "true" : "false");
    kbuf_puts(&b, text);
    field_string(&b, "error", pressure.error, pressure.error_len);
    if (step && step->op == PRESSURE_DONE) {
        kbuf_puts(&b, ",\"step\":[\"done\"]");
    } else if (step) {
        snprintf(text, sizeof(text), ",\"step\":[\"%s\",\"%s\",%u]", ops[step->op],
                 step->kind == PRESSURE_NODES ? "nodes" : "watches", step->index);
        kbuf_puts(&b, text);
    }
    if (steps >= 0) {
        snprintf(text, sizeof(text), ",\"steps\":%ld", steps);
        kbuf_puts(&b, text);
    }
    kbuf_putc(&b, '}');
    puts(out_storage);
}

static unsigned count_arg(const char *s)
{
    return *s == '-' ? PROTO_KEEP : (unsigned)strtoul(s, NULL, 10);
}

static int error_arg(const char *s)
{
    return *s ? (int)xsw_error_from_name(s, strlen(s)) : XSW_OK;
}

static void pressure_command(const char *cmd, const char *arg)
{
    struct pressure_step step;
    char a[32] = "", c[32] = "", e[32] = "";

    sscanf(arg, "%31s %31s %31s", a, c, e);
    if (command(cmd, "pressure-request")) {
        pressure_request(&pressure, count_arg(a), count_arg(c));
        print_pressure(NULL, -1);
    } else if (command(cmd, "pressure-step")) {
        bool some = pressure_next(&pressure, &step);

        if (some)
            pressure_done(&pressure, &step, error_arg(a));
        print_pressure(some ? &step : NULL, -1);
    } else if (command(cmd, "pressure-run")) {
        unsigned limit[2] = {count_arg(a), count_arg(c)};
        long steps = 0;

        /* Bounded: a machine that never finishes is a failure, not a hang of the tests. */
        while (steps < 1000000 && pressure_next(&pressure, &step)) {
            bool over = step.op == PRESSURE_ADD && step.index >= limit[step.kind];

            pressure_done(&pressure, &step, over ? error_arg(e) : XSW_OK);
            steps++;
        }
        print_pressure(NULL, steps);
    } else {
        printf("{\"resumed\":%s}\n", pressure_resume(&pressure, strcmp(arg, "new") == 0)
                                         ? "true" : "false");
    }
}

static bool command(const char *cmd, const char *word)
{
    size_t n = strlen(word);

    return strncmp(cmd, word, n) == 0 && (cmd[n] == '\0' || cmd[n] == ' ');
}

int main(void)
{
    proto_init(&proto);
    pressure_init(&pressure);
    while (fgets(line, sizeof(line), stdin)) {
        size_t n = strlen(line);
        const char *arg;

        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        arg = strchr(line, ' ') ? strchr(line, ' ') + 1 : "";
        if (command(line, "reset")) {
            proto_init(&proto);
            puts("{}");
        } else if (command(line, "status")) {
            proto_status(&proto, &fx);
            print_effects();
        } else if (command(line, "shutdown")) {
            size_t len = unhex(arg);
            proto_on_shutdown(&proto, value, len, true, &fx);
            print_effects();
        } else if (command(line, "shutdown-missing")) {
            proto_on_shutdown(&proto, NULL, 0, false, &fx);
            print_effects();
        } else if (command(line, "testing")) {
            size_t len = unhex(arg);
            proto_on_testing(&proto, value, len, true, &fx);
            print_effects();
        } else if (command(line, "testing-missing")) {
            proto_on_testing(&proto, NULL, 0, false, &fx);
            print_effects();
        } else if (command(line, "refused")) {
            proto_write_refused(&proto, strcmp(arg, "testing") == 0 ? PROTO_KEY_TESTING
                                                                  : PROTO_KEY_SHUTDOWN);
            puts("{}");
        } else if (command(line, "resume")) {
            proto_on_resume(&proto, strcmp(arg, "new") == 0, &fx);
            print_effects();
        } else if (command(line, "timer")) {
            proto_on_timer(&proto, &fx);
            print_effects();
        } else if (command(line, "answer-lost")) {
            proto_on_answer_lost(&proto, &fx);
            print_effects();
        } else if (strncmp(line, "pressure-", 9) == 0) {
            pressure_command(line, arg);
        } else if (command(line, "json")) {
            size_t len = unhex(arg);
            print_json_result(json_parse_object(value, len, &doc));
        } else {
            fprintf(stderr, "driver: unknown command: %s\n", line);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
