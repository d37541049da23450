/*
 * Host unit tests for the byte-level code: the xenstore wire codec, the string helpers, and the
 * JSON reader's bounds. Prints "ok <case>" or "FAIL <case>: <check>" per case, exits 1 if any
 * case failed. Protocol behaviour is tested from the pytest tables through driver.c instead.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "kstring.h"
#include "balloon.h"
#include "p2m_tree.h"
#include "protocol.h"
#include "xs_wire.h"

#include "check.h"

static uint8_t buf[XSW_MESSAGE_MAX + 64];

static struct xsd_sockmsg header_of(const void *p)
{
    struct xsd_sockmsg h;

    memcpy(&h, p, sizeof(h));
    return h;
}

CASE(xs_header_layout_matches_xen)
{
    /* The daemon reads four native uint32 fields; a padding change would break every message. */
    CHECK(XSW_HEADER_SIZE == 16);
    CHECK(XS_WATCH_EVENT == 15 && XS_ERROR == 16 && XS_READ == 2 && XS_WRITE == 11);
}

CASE(xs_encode_read_has_nul_terminated_path)
{
    size_t n = xsw_encode_read(buf, sizeof(buf), 7, 3, "control/shutdown");
    struct xsd_sockmsg h = header_of(buf);

    CHECK(n == 16 + 17);
    CHECK(h.type == XS_READ && h.req_id == 7 && h.tx_id == 3 && h.len == 17);
    CHECK(memcmp(buf + 16, "control/shutdown", 17) == 0);
}

CASE(xs_encode_write_value_has_no_nul)
{
    size_t n = xsw_encode_write(buf, sizeof(buf), 9, 0, "data/test-vm/state", "ready", 5);
    struct xsd_sockmsg h = header_of(buf);

    CHECK(h.type == XS_WRITE && h.req_id == 9 && h.len == 19 + 5);
    CHECK(n == 16 + 24);
    CHECK(memcmp(buf + 16, "data/test-vm/state\0ready", 24) == 0);
}

CASE(xs_encode_write_empty_value)
{
    size_t n = xsw_encode_write(buf, sizeof(buf), 1, 0, "control/shutdown", "", 0);

    CHECK(n == 16 + 17);
    CHECK(header_of(buf).len == 17);
    CHECK(buf[16 + 16] == '\0');
}

CASE(xs_encode_watch_and_unwatch_two_strings)
{
    size_t n = xsw_encode_watch(buf, sizeof(buf), 4, "control/testing", "t");
    struct xsd_sockmsg h = header_of(buf);

    CHECK(n == 16 + 16 + 2 && h.type == XS_WATCH && h.tx_id == 0);
    CHECK(memcmp(buf + 16, "control/testing\0t\0", 18) == 0);
    n = xsw_encode_unwatch(buf, sizeof(buf), 5, "control/testing", "t");
    CHECK(n == 34 && header_of(buf).type == XS_UNWATCH);
}

CASE(xs_encode_rm)
{
    size_t n = xsw_encode_rm(buf, sizeof(buf), 6, 0, "control/shutdown");

    CHECK(n == 33 && header_of(buf).type == XS_RM);
}

CASE(xs_encode_refuses_payload_over_limit)
{
    static char big[XENSTORE_PAYLOAD_MAX];
    size_t n;

    memset(big, 'x', sizeof(big));
    /* "p\0" + 4094 bytes = 4096: exactly the limit. */
    n = xsw_encode_write(buf, sizeof(buf), 1, 0, "p", big, XENSTORE_PAYLOAD_MAX - 2);
    CHECK(n == 16 + XENSTORE_PAYLOAD_MAX);
    n = xsw_encode_write(buf, sizeof(buf), 1, 0, "p", big, XENSTORE_PAYLOAD_MAX - 1);
    CHECK(n == 0);
}

CASE(xs_encode_refuses_small_buffer_and_leaves_it)
{
    uint8_t small[20];

    memset(small, 0xab, sizeof(small));
    CHECK(xsw_encode_read(small, sizeof(small), 1, 0, "control/shutdown") == 0);
    CHECK(small[0] == 0xab && small[19] == 0xab);
    CHECK(xsw_encode_read(small, 10, 1, 0, "") == 0);
    CHECK(xsw_encode_read(small, sizeof(small), 1, 0, "abc") == 20);
}

CASE(xs_message_size_needs_header_and_rejects_oversize)
{
    struct xsd_sockmsg h = { .type = XS_READ, .req_id = 1, .tx_id = 0, .len = 5 };

    memcpy(buf, &h, sizeof(h));
    CHECK(xsw_message_size(buf, 0) == 0);
    CHECK(xsw_message_size(buf, 15) == 0);
    CHECK(xsw_message_size(buf, 16) == 21);
    h.len = XENSTORE_PAYLOAD_MAX;
    memcpy(buf, &h, sizeof(h));
    CHECK(xsw_message_size(buf, 16) == 16 + XENSTORE_PAYLOAD_MAX);
    h.len = XENSTORE_PAYLOAD_MAX + 1;
    memcpy(buf, &h, sizeof(h));
    CHECK(xsw_message_size(buf, 16) == SIZE_MAX);
}

CASE(xs_decode_roundtrip_and_length_mismatch)
{
    struct xsw_msg m;
    size_t n = xsw_encode_write(buf, sizeof(buf), 42, 8, "a/b", "value", 5);

    CHECK(xsw_decode(buf, n, &m));
    CHECK(m.type == XS_WRITE && m.req_id == 42 && m.tx_id == 8 && m.len == 9);
    CHECK(memcmp(m.payload, "a/b\0value", 9) == 0);
    CHECK(!xsw_decode(buf, n - 1, &m));
    CHECK(!xsw_decode(buf, n + 1, &m));
    CHECK(!xsw_decode(buf, 15, &m));
}

static size_t make_msg(uint32_t type, uint32_t req_id, const char *payload, size_t len)
{
    struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = 0, .len = (uint32_t)len };

    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), payload, len);
    return sizeof(h) + len;
}

CASE(xs_error_names_map_both_ways)
{
    static const char *const names[] = { "EINVAL", "EACCES", "EEXIST", "EISDIR", "ENOENT",
                                         "ENOMEM", "ENOSPC", "EIO", "ENOTEMPTY", "ENOSYS",
                                         "EROFS", "EBUSY", "EAGAIN", "EISCONN", "E2BIG",
                                         "EPERM", "EQUOTA" };

    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        enum xsw_error e = xsw_error_from_name(names[i], strlen(names[i]));

        CHECK(e != XSW_EUNKNOWN && e != XSW_OK);
        CHECK(strcmp(xsw_error_name(e), names[i]) == 0);
    }
    CHECK(xsw_error_from_name("ENOENTX", 7) == XSW_EUNKNOWN);
    CHECK(xsw_error_from_name("ENOEN", 5) == XSW_EUNKNOWN);
    CHECK(strcmp(xsw_error_name((enum xsw_error)999), "EUNKNOWN") == 0);
}

CASE(xs_reply_error_from_payload)
{
    struct xsw_msg m;
    size_t n;

    n = make_msg(XS_ERROR, 3, "ENOENT", 7); /* with the NUL xenstored sends */
    CHECK(xsw_decode(buf, n, &m) && xsw_reply_error(&m) == XSW_ENOENT);
    n = make_msg(XS_ERROR, 3, "EACCES", 6); /* without it */
    CHECK(xsw_decode(buf, n, &m) && xsw_reply_error(&m) == XSW_EACCES);
    n = make_msg(XS_ERROR, 3, "EWHAT", 6);
    CHECK(xsw_decode(buf, n, &m) && xsw_reply_error(&m) == XSW_EUNKNOWN);
    n = make_msg(XS_ERROR, 3, "", 0);
    CHECK(xsw_decode(buf, n, &m) && xsw_reply_error(&m) == XSW_EPROTO);
    n = make_msg(XS_ERROR, 3, "ENOENT\0junk", 11);
    CHECK(xsw_decode(buf, n, &m) && xsw_reply_error(&m) == XSW_EPROTO);
    n = make_msg(XS_READ, 3, "ENOENT", 6); /* a value that merely looks like an error name */
    CHECK(xsw_decode(buf, n, &m) && xsw_reply_error(&m) == XSW_OK);
}

CASE(xs_watch_event_split)
{
    struct xsw_msg m;
    const char *path, *token;
    size_t plen, tlen, n;

    n = make_msg(XS_WATCH_EVENT, 0, "/local/domain/5/control/shutdown\0shutdown\0", 42);
    CHECK(xsw_decode(buf, n, &m));
    CHECK(xsw_decode_watch_event(&m, &path, &plen, &token, &tlen));
    CHECK(plen == 32 && memcmp(path, "/local/domain/5/control/shutdown", 32) == 0);
    CHECK(tlen == 8 && memcmp(token, "shutdown", 8) == 0);

    n = make_msg(XS_WATCH_EVENT, 0, "a\0tok", 5); /* last NUL missing */
    CHECK(xsw_decode(buf, n, &m) && xsw_decode_watch_event(&m, &path, &plen, &token, &tlen));
    CHECK(plen == 1 && tlen == 3);
    n = make_msg(XS_WATCH_EVENT, 0, "a\0\0", 3); /* empty token is allowed */
    CHECK(xsw_decode(buf, n, &m) && xsw_decode_watch_event(&m, &path, &plen, &token, &tlen));
    CHECK(tlen == 0);
}

CASE(xs_watch_event_malformed)
{
    struct xsw_msg m;
    const char *path, *token;
    size_t plen, tlen, n;

    n = make_msg(XS_WATCH_EVENT, 0, "nonul", 5);
    CHECK(xsw_decode(buf, n, &m) && !xsw_decode_watch_event(&m, &path, &plen, &token, &tlen));
    n = make_msg(XS_WATCH_EVENT, 0, "\0tok\0", 5); /* empty path */
    CHECK(xsw_decode(buf, n, &m) && !xsw_decode_watch_event(&m, &path, &plen, &token, &tlen));
    n = make_msg(XS_WATCH_EVENT, 0, "a\0b\0c", 5); /* a third string */
    CHECK(xsw_decode(buf, n, &m) && !xsw_decode_watch_event(&m, &path, &plen, &token, &tlen));
    n = make_msg(XS_READ, 0, "a\0b\0", 4);
    CHECK(xsw_decode(buf, n, &m) && !xsw_decode_watch_event(&m, &path, &plen, &token, &tlen));
}

CASE(xs_type_names)
{
    CHECK(strcmp(xsw_type_name(XS_WATCH_EVENT), "XS_WATCH_EVENT") == 0);
    CHECK(strcmp(xsw_type_name(XS_DIRECTORY_PART), "XS_DIRECTORY_PART") == 0);
    CHECK(strcmp(xsw_type_name(XS_SET_TARGET + 1), "XS_?") == 0);
    CHECK(strcmp(xsw_type_name(XS_INVALID), "XS_?") == 0);
}

CASE(kbuf_truncates_and_stays_terminated)
{
    char s[8];
    struct kbuf b;

    kbuf_init(&b, s, sizeof(s));
    kbuf_puts(&b, "abcdefghij");
    CHECK(b.truncated && b.len == 7 && strcmp(s, "abcdefg") == 0);
    kbuf_reset(&b);
    CHECK(!b.truncated && b.len == 0 && s[0] == '\0');
}

CASE(kbuf_numbers)
{
    char s[64];
    struct kbuf b;

    kbuf_init(&b, s, sizeof(s));
    kbuf_put_u64(&b, 0);
    kbuf_putc(&b, ' ');
    kbuf_put_u64(&b, UINT64_MAX);
    kbuf_putc(&b, ' ');
    kbuf_put_hex(&b, 0xbeef, 8);
    CHECK(strcmp(s, "0 18446744073709551615 0000beef") == 0);
}

CASE(kbuf_printable_escapes_and_cuts)
{
    char s[128];
    struct kbuf b;

    kbuf_init(&b, s, sizeof(s));
    kbuf_put_printable(&b, "a\nb\\\xff", 5, 16);
    CHECK(strcmp(s, "a\\x0ab\\x5c\\xff") == 0);
    kbuf_reset(&b);
    kbuf_put_printable(&b, "abcdef", 6, 3);
    CHECK(strcmp(s, "abc...(6 bytes)") == 0);
}

CASE(kbuf_json_string_escapes_minimum)
{
    char s[128];
    struct kbuf b;

    kbuf_init(&b, s, sizeof(s));
    kbuf_put_json_string(&b, "q\"b\\n\n\x01/\x7f", 9);
    CHECK(strcmp(s, "\"q\\\"b\\\\n\\n\\u0001/\x7f\"") == 0);
}

CASE(kstring_compare)
{
    CHECK(kstreq("halt", 4, "halt") && !kstreq("halt", 3, "halt") && !kstreq("halts", 5, "halt"));
    CHECK(kstartswith("control/x", 9, "control/") && !kstartswith("con", 3, "control/"));
    CHECK(kmemcmp("ab", "ac", 2) < 0 && kmemcmp("ac", "ab", 2) > 0 && kmemcmp("a", "b", 0) == 0);
    CHECK(kstrnlen("abc", 2) == 2 && kstrnlen("abc", 9) == 3 && kstrlen("") == 0);
}

static struct json_doc doc;

CASE(json_depth_limit_exact)
{
    char s[64];
    unsigned inner = JSON_MAX_DEPTH - 1; /* containers allowed inside the top-level object */
    size_t n = 0;

    n += (size_t)sprintf(s + n, "{\"a\":");
    for (unsigned i = 0; i < inner; i++)
        s[n++] = '[';
    for (unsigned i = 0; i < inner; i++)
        s[n++] = ']';
    s[n++] = '}';
    CHECK(json_parse_object(s, n, &doc) == NULL);

    n = (size_t)sprintf(s, "{\"a\":");
    for (unsigned i = 0; i < inner + 1; i++)
        s[n++] = '[';
    for (unsigned i = 0; i < inner + 1; i++)
        s[n++] = ']';
    s[n++] = '}';
    CHECK(json_parse_object(s, n, &doc) != NULL);
    CHECK(strcmp(doc.error, "nesting too deep") == 0 && doc.error_offset == 5 + inner);
}

CASE(json_max_input_all_of_it_usable)
{
    /* A string member filling the whole 4096 bytes decodes into the fixed scratch. */
    static char s[JSON_MAX_INPUT + 1];
    size_t n = JSON_MAX_INPUT;

    memset(s, 'x', n);
    memcpy(s, "{\"k\":\"", 6);
    memcpy(s + n - 2, "\"}", 2);
    CHECK(json_parse_object(s, n, &doc) == NULL);
    CHECK(doc.count == 1 && doc.members[0].str_len == n - 8);
    s[n] = ' ';
    CHECK(json_parse_object(s, n + 1, &doc) != NULL);
    CHECK(strcmp(doc.error, "message too long") == 0);
}

CASE(json_members_limit)
{
    char s[1024];
    size_t n = 0;

    s[n++] = '{';
    for (unsigned i = 0; i < JSON_MAX_MEMBERS; i++)
        n += (size_t)sprintf(s + n, "%s\"k%u\":%u", i ? "," : "", i, i);
    s[n++] = '}';
    CHECK(json_parse_object(s, n, &doc) == NULL && doc.count == JSON_MAX_MEMBERS);
    n--;
    n += (size_t)sprintf(s + n, ",\"more\":1}");
    CHECK(json_parse_object(s, n, &doc) != NULL);
    CHECK(strcmp(doc.error, "too many fields") == 0);
}

CASE(json_input_not_nul_terminated)
{
    /* The reader must stop at len: what follows in memory is not part of the message. */
    const char *s = "{\"a\":1}garbage";

    CHECK(json_parse_object(s, 7, &doc) == NULL);
    CHECK(json_parse_object(s, 6, &doc) != NULL);
    CHECK(strcmp(doc.error, "unexpected end of input") == 0 && doc.error_offset == 6);
}

CASE(proto_struct_fits_budget)
{
    /* The kernel keeps two struct proto in .bss (one to decide on): keep its size deliberate. */
    CHECK(sizeof(struct proto) < 32 * 1024);
    CHECK(sizeof(struct proto_effects) < 2 * 1024);
}

/* A made-up machine layout: every p2m page somewhere else, none at MFN 0. */
static unsigned long fake_p2m_page_mfn(unsigned long page, void *ctx)
{
    return *(const unsigned long *)ctx + page * 7 + 3;
}

static unsigned long frame_list[P2M_PER_PAGE];
static unsigned long top[P2M_PER_PAGE];
static unsigned long list_mfns[P2M_MAX_LIST_PAGES];

/* Build the whole tree for nr_pfns and check every entry a save would follow. */
static void check_tree(unsigned long nr_pfns, unsigned long want_p2m_pages,
                       unsigned long want_list_pages)
{
    unsigned long base = 0x40000;
    struct p2m_tree tree;
    unsigned long covered = 0;

    CHECK(p2m_tree_layout(nr_pfns, &tree));
    CHECK(tree.nr_pfns == nr_pfns);
    CHECK(tree.p2m_pages == want_p2m_pages && tree.list_pages == want_list_pages);
    for (unsigned long list = 0; list < tree.list_pages; list++) {
        p2m_tree_fill_list(&tree, list, fake_p2m_page_mfn, &base, frame_list);
        for (unsigned long i = 0; i < P2M_PER_PAGE; i++) {
            unsigned long page = list * P2M_PER_PAGE + i;
            if (page < tree.p2m_pages) {
                CHECK(frame_list[i] == base + page * 7 + 3);
                covered += P2M_PER_PAGE;
            } else {
                CHECK(frame_list[i] == 0);
            }
        }
        list_mfns[list] = 0x900000 + list;
    }
    /* Every PFN's p2m entry is reachable through the tree. */
    CHECK(covered >= nr_pfns && covered - nr_pfns < P2M_PER_PAGE);
    p2m_tree_fill_top(&tree, list_mfns, top);
    for (unsigned long i = 0; i < P2M_PER_PAGE; i++)
        CHECK(top[i] == (i < tree.list_pages ? 0x900000 + i : 0));
}

CASE(p2m_tree_6_gib)
{
    /* 1.5 Mi PFNs: 3072 p2m pages, 6 frame lists (more than the 4 the kernel once had). */
    check_tree(6UL << 18, 3072, 6);
}

CASE(p2m_tree_64_gib)
{
    check_tree(64UL << 18, 32768, 64);
}

CASE(p2m_tree_edges)
{
    struct p2m_tree tree;

    check_tree(1024, 2, 1);              /* 4 MiB, the smallest guest */
    check_tree(512 * 512, 512, 1);       /* exactly one frame list */
    check_tree(512 * 512 + 1, 513, 2);   /* one PFN more */
    check_tree(P2M_MAX_PFNS, 512 * 512, 512);
    CHECK(!p2m_tree_layout(P2M_MAX_PFNS + 1, &tree));
    CHECK(tree.nr_pfns == P2M_MAX_PFNS && tree.list_pages == P2M_MAX_LIST_PAGES);
}

/* A 16 MiB guest (4096 pages) whose balloon may take 3000 of them. */
static void small_guest(struct balloon *b)
{
    balloon_init(b, 4096, 3000);
}

CASE(balloon_obeys_target_in_pages)
{
    struct balloon b;

    small_guest(&b);
    CHECK(b.percent == 100 && b.out == 0 && b.offset == 0);
    CHECK(balloon_goal(&b, 16384) == 0);  /* its boot size */
    CHECK(balloon_goal(&b, 8192) == 2048); /* half of it */
    CHECK(balloon_goal(&b, 8195) == 2048); /* KiB rounded down to pages, as Linux */
    CHECK(balloon_goal(&b, 8188) == 2049);
    CHECK(balloon_goal(&b, 65536) == 0);  /* more than it booted with: all of it back */
}

CASE(balloon_goal_bounded_by_room)
{
    struct balloon b;

    small_guest(&b);
    CHECK(balloon_goal(&b, 4096) == 3000);
    CHECK(balloon_goal(&b, 0) == 3000);
    balloon_init(&b, 4096, 0);
    CHECK(balloon_goal(&b, 0) == 0);
}

CASE(balloon_partial_percent_from_boot_size)
{
    struct balloon b;

    small_guest(&b);
    b.percent = 50;
    CHECK(balloon_goal(&b, 8192) == 1024);
    b.percent = 0; /* ignores every target: stays at (or goes back to) its boot size */
    CHECK(balloon_goal(&b, 8192) == 0);
    b.percent = 33;
    CHECK(balloon_goal(&b, 8192) == 675); /* 2048 * 33 / 100, rounded down */
    b.percent = 50;
    CHECK(balloon_goal(&b, 0) == 2048);   /* half of all 4096, within the room */
    b.percent = 100;
    b.out = 1000; /* what is out already does not change the goal: a target asked again */
    CHECK(balloon_goal(&b, 8192) == 2048);
}

CASE(balloon_hvm_offset_from_static_max)
{
    struct balloon b;

    /* PVH: the toolstack counts 1 MiB the guest does not see as RAM (target_diff). */
    balloon_init(&b, 3840, 3000);
    balloon_offset(&b, 16384);
    CHECK(b.offset == 256);
    CHECK(balloon_goal(&b, 16384) == 0);
    CHECK(balloon_goal(&b, 8192) == 2048); /* 8 MiB: 7 of RAM, 2048 pages out */
    CHECK(balloon_goal(&b, 512) == 3000); /* below the offset: as low as it can */
    balloon_offset(&b, 8192); /* static-max below its RAM: no offset */
    CHECK(b.offset == 0);
    balloon_offset(&b, 0);
    CHECK(b.offset == 0);
}

CASE(balloon_huge_values)
{
    struct balloon b;
    unsigned long kib;

    balloon_init(&b, 1UL << 40, 1UL << 40);
    CHECK(balloon_goal(&b, 0) == 1UL << 40);
    CHECK(kparse_ulong("999999999999999", 15, &kib) && kib == 999999999999999UL);
    CHECK(balloon_goal(&b, kib) == 0);
    b.percent = 1;
    CHECK(balloon_goal(&b, 0) == (1UL << 40) / 100);
}

CASE(kparse_ulong_digits_only)
{
    unsigned long v = 7;

    CHECK(kparse_ulong("16384", 5, &v) && v == 16384);
    CHECK(kparse_ulong("0", 1, &v) && v == 0);
    CHECK(kparse_ulong("007", 3, &v) && v == 7);
    v = 9;
    CHECK(!kparse_ulong("", 0, &v) && v == 9);
    CHECK(!kparse_ulong("-1", 2, &v) && v == 9);
    CHECK(!kparse_ulong("1 ", 2, &v) && v == 9);
    CHECK(!kparse_ulong("0x10", 4, &v) && v == 9);
    CHECK(!kparse_ulong("1234567890123456", 16, &v) && v == 9);
    CHECK(kparse_ulong("12345", 3, &v) && v == 123); /* counted, not NUL-terminated */
}

int main(void)
{
    run("xs_header_layout_matches_xen", xs_header_layout_matches_xen);
    run("xs_encode_read_has_nul_terminated_path", xs_encode_read_has_nul_terminated_path);
    run("xs_encode_write_value_has_no_nul", xs_encode_write_value_has_no_nul);
    run("xs_encode_write_empty_value", xs_encode_write_empty_value);
    run("xs_encode_watch_and_unwatch_two_strings", xs_encode_watch_and_unwatch_two_strings);
    run("xs_encode_rm", xs_encode_rm);
    run("xs_encode_refuses_payload_over_limit", xs_encode_refuses_payload_over_limit);
    run("xs_encode_refuses_small_buffer_and_leaves_it",
        xs_encode_refuses_small_buffer_and_leaves_it);
    run("xs_message_size_needs_header_and_rejects_oversize",
        xs_message_size_needs_header_and_rejects_oversize);
    run("xs_decode_roundtrip_and_length_mismatch", xs_decode_roundtrip_and_length_mismatch);
    run("xs_error_names_map_both_ways", xs_error_names_map_both_ways);
    run("xs_reply_error_from_payload", xs_reply_error_from_payload);
    run("xs_watch_event_split", xs_watch_event_split);
    run("xs_watch_event_malformed", xs_watch_event_malformed);
    run("xs_type_names", xs_type_names);
    run("kbuf_truncates_and_stays_terminated", kbuf_truncates_and_stays_terminated);
    run("kbuf_numbers", kbuf_numbers);
    run("kbuf_printable_escapes_and_cuts", kbuf_printable_escapes_and_cuts);
    run("kbuf_json_string_escapes_minimum", kbuf_json_string_escapes_minimum);
    run("kstring_compare", kstring_compare);
    run("json_depth_limit_exact", json_depth_limit_exact);
    run("json_max_input_all_of_it_usable", json_max_input_all_of_it_usable);
    run("json_members_limit", json_members_limit);
    run("json_input_not_nul_terminated", json_input_not_nul_terminated);
    run("proto_struct_fits_budget", proto_struct_fits_budget);
    run("balloon_obeys_target_in_pages", balloon_obeys_target_in_pages);
    run("balloon_goal_bounded_by_room", balloon_goal_bounded_by_room);
    run("balloon_partial_percent_from_boot_size", balloon_partial_percent_from_boot_size);
    run("balloon_hvm_offset_from_static_max", balloon_hvm_offset_from_static_max);
    run("balloon_huge_values", balloon_huge_values);
    run("kparse_ulong_digits_only", kparse_ulong_digits_only);
    run("p2m_tree_6_gib", p2m_tree_6_gib);
    run("p2m_tree_64_gib", p2m_tree_64_gib);
    run("p2m_tree_edges", p2m_tree_edges);
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
