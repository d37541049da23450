/*
 * Strict, bounded reader for one JSON object (RFC 8259) as written to control/testing.
 *
 * Why our own: the kernel has no libc and no heap, and the input comes from whoever can write a
 * xenstore key, so the reader must reject anything odd with an exact reason and may never use
 * more memory or stack than a fixed budget:
 *  - input at most JSON_MAX_INPUT bytes, every byte ASCII (non-ASCII is rejected up front);
 *  - the top level must be an object; values of any JSON type are accepted and validated, but
 *    only top-level members are kept (the protocol ignores everything else);
 *  - nesting at most JSON_MAX_DEPTH levels (the top-level object counts as one), parsed without
 *    recursion so hostile input cannot exhaust the kernel stack;
 *  - strings are decoded (escapes resolved) into the caller's scratch buffer; \u escapes must
 *    stay ASCII and must not be \u0000, so every decoded string is plain ASCII without NULs;
 *  - JSON whitespace (space, tab, CR, LF) is accepted between tokens as the grammar allows;
 *  - numbers are checked against the grammar but not converted (nothing needs their value).
 */
#ifndef XTV_JSON_H
#define XTV_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_INPUT 4096
#define JSON_MAX_DEPTH 8
#define JSON_MAX_MEMBERS 32

enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

/* One top-level member. key/str point into the document's scratch and are not NUL-terminated. */
struct json_member {
    const char *key;
    size_t key_len;
    enum json_type type;
    const char *str; /* decoded value (JSON_STRING), the text as written (JSON_NUMBER), or NULL */
    size_t str_len;
};

/*
 * The fixed budget: decoded strings never exceed the input, so JSON_MAX_INPUT bytes of scratch
 * always suffice.
 */
struct json_doc {
    struct json_member members[JSON_MAX_MEMBERS];
    size_t count;
    char scratch[JSON_MAX_INPUT];
    /* On failure: the reason (a static string), the offset of the offending byte, and the byte
     * itself when the reason is about a byte value (non-ASCII, control byte), else -1. */
    const char *error;
    size_t error_offset;
    int error_byte;
};

/*
 * Parse (text, len) as one object. Returns NULL on success, else the reason, e.g.
 * "not an object", "expected ':'", "nesting too deep", "non-ASCII byte" (also left in doc->error
 * with the offset). The reason strings are listed in json.c.
 */
const char *json_parse_object(const char *text, size_t len, struct json_doc *doc);

/* The first top-level member called `key`, or NULL. */
const struct json_member *json_find(const struct json_doc *doc, const char *key);
/* How many top-level members are called `key` (the protocol rejects duplicated fields). */
size_t json_count(const struct json_doc *doc, const char *key);

const char *json_type_name(enum json_type type);

#endif
