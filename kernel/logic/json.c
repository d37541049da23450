/*
 * Strict, bounded JSON object reader: see json.h for the rules.
 *
 * Error reasons (static strings; json_doc carries offset and, for byte errors, the byte):
 *   "message too long"         more than JSON_MAX_INPUT bytes
 *   "non-ASCII byte"           a byte >= 0x80 anywhere (checked before parsing)
 *   "control byte"             a byte < 0x20 outside a string that is not JSON whitespace
 *   "control byte in string"   a raw byte < 0x20 inside a string (JSON requires an escape)
 *   "unexpected end of input"  the text stops inside the object
 *   "not an object"            the top-level value is not an object
 *   "expected a string key" / "expected ':'" / "expected ',' or '}'" / "expected ',' or ']'"
 *   "expected a value"         a byte that cannot start a JSON value
 *   "unterminated string"      no closing quote before the end
 *   "invalid escape"           a backslash followed by anything but "\/bfnrtu
 *   "invalid \u escape"        \u not followed by four hex digits
 *   "non-ASCII \u escape"      \u escape above U+007F (this reader is ASCII only)
 *   "NUL in string"            \u0000: would cut the value short in C strings and logs
 *   "invalid number" / "invalid literal"
 *   "nesting too deep"         more than JSON_MAX_DEPTH nested containers
 *   "too many fields"          more than JSON_MAX_MEMBERS top-level members
 *   "trailing data after the object"
 */
#include "json.h"

#include <stdint.h>

#include "kstring.h"

struct parser {
    const char *text;
    size_t len;
    size_t pos;
    struct json_doc *doc;
    size_t scratch_used;
};

static bool fail_at(struct parser *ps, size_t offset, const char *reason)
{
    struct json_doc *doc = ps->doc;

    doc->error = reason;
    doc->error_offset = offset;
    doc->error_byte = -1;
    return false;
}

static bool fail_byte(struct parser *ps, size_t offset, const char *reason)
{
    fail_at(ps, offset, reason);
    ps->doc->error_byte = (unsigned char)ps->text[offset];
    return false;
}

/*
 * A syntax error at the current position. A stray control byte or the end of input explain the
 * failure better than what was expected there, so they take precedence.
 */
static bool fail_here(struct parser *ps, const char *expected)
{
    if (ps->pos >= ps->len)
        return fail_at(ps, ps->len, "unexpected end of input");
    if ((unsigned char)ps->text[ps->pos] < 0x20)
        return fail_byte(ps, ps->pos, "control byte");
    return fail_at(ps, ps->pos, expected);
}

static void skip_ws(struct parser *ps)
{
    while (ps->pos < ps->len) {
        char c = ps->text[ps->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        ps->pos++;
    }
}

static int peek(const struct parser *ps)
{
    return ps->pos < ps->len ? (unsigned char)ps->text[ps->pos] : -1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * A string at pos (which holds '"'). With `keep`, the decoded bytes go to the scratch buffer and
 * *out / *out_len describe them; without, the string is only validated, so nested values cost
 * no scratch.
 */
static bool parse_string(struct parser *ps, bool keep, const char **out, size_t *out_len)
{
    char *dst = ps->doc->scratch + ps->scratch_used;
    size_t n = 0;

    ps->pos++; /* the opening quote */
    for (;;) {
        if (ps->pos >= ps->len)
            return fail_at(ps, ps->len, "unterminated string");
        unsigned char c = (unsigned char)ps->text[ps->pos];
        size_t start = ps->pos;

        if (c == '"') {
            ps->pos++;
            break;
        }
        if (c < 0x20)
            return fail_byte(ps, ps->pos, "control byte in string");
        if (c != '\\') {
            ps->pos++;
            if (keep)
                dst[n++] = (char)c;
            continue;
        }
        if (ps->pos + 1 >= ps->len)
            return fail_at(ps, ps->len, "unterminated string");
        char esc = ps->text[ps->pos + 1];
        char decoded;

        ps->pos += 2;
        switch (esc) {
        case '"':
        case '\\':
        case '/':
            decoded = esc;
            break;
        case 'b':
            decoded = '\b';
            break;
        case 'f':
            decoded = '\f';
            break;
        case 'n':
            decoded = '\n';
            break;
        case 'r':
            decoded = '\r';
            break;
        case 't':
            decoded = '\t';
            break;
        case 'u': {
            unsigned v = 0;

            if (ps->len - ps->pos < 4)
                return fail_at(ps, start, "invalid \\u escape");
            for (unsigned i = 0; i < 4; i++) {
                int h = hex_value(ps->text[ps->pos + i]);

                if (h < 0)
                    return fail_at(ps, start, "invalid \\u escape");
                v = v * 16 + (unsigned)h;
            }
            ps->pos += 4;
            if (v == 0)
                return fail_at(ps, start, "NUL in string");
            if (v > 0x7f)
                return fail_at(ps, start, "non-ASCII \\u escape");
            decoded = (char)v;
            break;
        }
        default:
            return fail_at(ps, start, "invalid escape");
        }
        if (keep)
            dst[n++] = decoded;
    }
    if (keep) {
        /* Decoding never grows a string, and the scratch is as large as the whole input. */
        ps->scratch_used += n;
        *out = dst;
        *out_len = n;
    }
    return true;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(struct parser *ps)
{
    size_t start = ps->pos;

    if (peek(ps) == '-')
        ps->pos++;
    if (peek(ps) == '0') {
        ps->pos++;
        if (is_digit(peek(ps)))
            return fail_at(ps, start, "invalid number"); /* leading zero */
    } else if (is_digit(peek(ps))) {
        while (is_digit(peek(ps)))
            ps->pos++;
    } else {
        return fail_at(ps, start, "invalid number");
    }
    if (peek(ps) == '.') {
        ps->pos++;
        if (!is_digit(peek(ps)))
            return fail_at(ps, start, "invalid number");
        while (is_digit(peek(ps)))
            ps->pos++;
    }
    if (peek(ps) == 'e' || peek(ps) == 'E') {
        ps->pos++;
        if (peek(ps) == '+' || peek(ps) == '-')
            ps->pos++;
        if (!is_digit(peek(ps)))
            return fail_at(ps, start, "invalid number");
        while (is_digit(peek(ps)))
            ps->pos++;
    }
    return true;
}

static bool parse_literal(struct parser *ps, const char *word)
{
    size_t n = kstrlen(word);

    if (ps->len - ps->pos < n || kmemcmp(ps->text + ps->pos, word, n) != 0)
        return fail_at(ps, ps->pos, "invalid literal");
    ps->pos += n;
    return true;
}

/* A scalar at pos; its type in *type. Containers are handled by parse_value. */
static bool parse_scalar(struct parser *ps, enum json_type *type, const char **str,
                         size_t *str_len, bool keep)
{
    switch (peek(ps)) {
    case '"':
        *type = JSON_STRING;
        return parse_string(ps, keep, str, str_len);
    case 't':
        *type = JSON_TRUE;
        return parse_literal(ps, "true");
    case 'f':
        *type = JSON_FALSE;
        return parse_literal(ps, "false");
    case 'n':
        *type = JSON_NULL;
        return parse_literal(ps, "null");
    default:
        if (peek(ps) == '-' || is_digit(peek(ps))) {
            size_t start = ps->pos;

            *type = JSON_NUMBER;
            if (!parse_number(ps))
                return false;
            if (keep) {
                /* The number's own text: the protocol reads whole milliseconds from it. */
                *str = ps->text + start;
                *str_len = ps->pos - start;
            }
            return true;
        }
        return fail_here(ps, "expected a value");
    }
}

/* `"key" :` inside a nested object, validated only. */
static bool skip_key(struct parser *ps)
{
    skip_ws(ps);
    if (peek(ps) != '"')
        return fail_here(ps, "expected a string key");
    if (!parse_string(ps, false, NULL, NULL))
        return false;
    skip_ws(ps);
    if (peek(ps) != ':')
        return fail_here(ps, "expected ':'");
    ps->pos++;
    return true;
}

/*
 * Any value at pos, `depth` containers deep already. Containers are walked with an explicit
 * stack of expected closers instead of recursion: the kernel stack is small and the depth is
 * chosen by whoever writes the key. Only top-level strings are kept (keep_string).
 */
static bool parse_value(struct parser *ps, unsigned depth, enum json_type *type, const char **str,
                        size_t *str_len, bool keep_string)
{
    char closers[JSON_MAX_DEPTH];
    unsigned open = 0;

    *str = NULL;
    *str_len = 0;
    skip_ws(ps);
    if (peek(ps) != '{' && peek(ps) != '[')
        return parse_scalar(ps, type, str, str_len, keep_string);
    *type = peek(ps) == '{' ? JSON_OBJECT : JSON_ARRAY;

    for (;;) {
        /* Here a value is expected. */
        skip_ws(ps);
        int c = peek(ps);

        if (c == '{' || c == '[') {
            if (depth + open + 1 > JSON_MAX_DEPTH)
                return fail_at(ps, ps->pos, "nesting too deep");
            closers[open++] = c == '{' ? '}' : ']';
            ps->pos++;
            skip_ws(ps);
            if (peek(ps) == closers[open - 1]) {
                ps->pos++;
                open--;
            } else {
                if (c == '{' && !skip_key(ps))
                    return false;
                continue;
            }
        } else {
            enum json_type scalar;
            const char *unused;
            size_t unused_len;

            if (!parse_scalar(ps, &scalar, &unused, &unused_len, false))
                return false;
        }

        /* A value ended: close containers or move on to the next element. */
        for (;;) {
            if (open == 0)
                return true;
            skip_ws(ps);
            char closer = closers[open - 1];

            if (peek(ps) == closer) {
                ps->pos++;
                open--;
                continue;
            }
            if (peek(ps) != ',')
                return fail_here(ps, closer == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
            ps->pos++;
            if (closer == '}' && !skip_key(ps))
                return false;
            break;
        }
    }
}

static bool parse_top_object(struct parser *ps)
{
    struct json_doc *doc = ps->doc;

    skip_ws(ps);
    if (peek(ps) != '{')
        return ps->pos >= ps->len ? fail_here(ps, "") : fail_at(ps, ps->pos, "not an object");
    ps->pos++;
    skip_ws(ps);
    if (peek(ps) == '}') {
        ps->pos++;
        return true;
    }
    for (;;) {
        struct json_member m;

        skip_ws(ps);
        if (peek(ps) != '"')
            return fail_here(ps, "expected a string key");
        if (doc->count == JSON_MAX_MEMBERS)
            return fail_at(ps, ps->pos, "too many fields");
        if (!parse_string(ps, true, &m.key, &m.key_len))
            return false;
        skip_ws(ps);
        if (peek(ps) != ':')
            return fail_here(ps, "expected ':'");
        ps->pos++;
        if (!parse_value(ps, 1, &m.type, &m.str, &m.str_len, true))
            return false;
        doc->members[doc->count++] = m;
        skip_ws(ps);
        if (peek(ps) == '}') {
            ps->pos++;
            return true;
        }
        if (peek(ps) != ',')
            return fail_here(ps, "expected ',' or '}'");
        ps->pos++;
    }
}

const char *json_parse_object(const char *text, size_t len, struct json_doc *doc)
{
    struct parser ps = { .text = text, .len = len, .pos = 0, .doc = doc, .scratch_used = 0 };

    doc->count = 0;
    doc->error = NULL;
    doc->error_offset = 0;
    doc->error_byte = -1;
    if (len > JSON_MAX_INPUT) {
        fail_at(&ps, JSON_MAX_INPUT, "message too long");
        return doc->error;
    }
    /* Non-ASCII first: it is a property of the bytes, not of where the grammar trips. */
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)text[i] >= 0x80) {
            fail_byte(&ps, i, "non-ASCII byte");
            return doc->error;
        }
    }
    if (!parse_top_object(&ps))
        return doc->error;
    skip_ws(&ps);
    if (ps.pos != len) {
        fail_here(&ps, "trailing data after the object");
        return doc->error;
    }
    return NULL;
}

const struct json_member *json_find(const struct json_doc *doc, const char *key)
{
    for (size_t i = 0; i < doc->count; i++)
        if (kstreq(doc->members[i].key, doc->members[i].key_len, key))
            return &doc->members[i];
    return NULL;
}

size_t json_count(const struct json_doc *doc, const char *key)
{
    size_t n = 0;

    for (size_t i = 0; i < doc->count; i++)
        if (kstreq(doc->members[i].key, doc->members[i].key_len, key))
            n++;
    return n;
}

const char *json_type_name(enum json_type type)
{
    switch (type) {
    case JSON_NULL:
        return "null";
    case JSON_FALSE:
    case JSON_TRUE:
        return "boolean";
    case JSON_NUMBER:
        return "number";
    case JSON_STRING:
        return "string";
    case JSON_ARRAY:
        return "array";
    case JSON_OBJECT:
        return "object";
    }
    return "?";
}
