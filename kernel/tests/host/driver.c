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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "kstring.h"
#include "protocol.h"

#define LINE_MAX_BYTES (64 * 1024)

static struct proto proto;
static struct proto_effects fx;
static struct json_doc doc;
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

static bool command(const char *cmd, const char *word)
{
    size_t n = strlen(word);

    return strncmp(cmd, word, n) == 0 && (cmd[n] == '\0' || cmd[n] == ' ');
}

int main(void)
{
    proto_init(&proto);
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
