/* Xenstore wire codec: see xs_wire.h. */
#include "xs_wire.h"

#include "kstring.h"

/* In the order of enum xsw_error, which follows xs_wire.h's xsd_errors table (then EQUOTA). */
static const char *const error_names[] = {
    [XSW_OK] = "OK",           [XSW_EINVAL] = "EINVAL",       [XSW_EACCES] = "EACCES",
    [XSW_EEXIST] = "EEXIST",   [XSW_EISDIR] = "EISDIR",       [XSW_ENOENT] = "ENOENT",
    [XSW_ENOMEM] = "ENOMEM",   [XSW_ENOSPC] = "ENOSPC",       [XSW_EIO] = "EIO",
    [XSW_ENOTEMPTY] = "ENOTEMPTY", [XSW_ENOSYS] = "ENOSYS",   [XSW_EROFS] = "EROFS",
    [XSW_EBUSY] = "EBUSY",     [XSW_EAGAIN] = "EAGAIN",       [XSW_EISCONN] = "EISCONN",
    [XSW_E2BIG] = "E2BIG",     [XSW_EPERM] = "EPERM",         [XSW_EQUOTA] = "EQUOTA",
    [XSW_EUNKNOWN] = "EUNKNOWN",
    [XSW_EPROTO] = "EPROTO",
};

static const char *const type_names[] = {
    [XS_CONTROL] = "XS_CONTROL",
    [XS_DIRECTORY] = "XS_DIRECTORY",
    [XS_READ] = "XS_READ",
    [XS_GET_PERMS] = "XS_GET_PERMS",
    [XS_WATCH] = "XS_WATCH",
    [XS_UNWATCH] = "XS_UNWATCH",
    [XS_TRANSACTION_START] = "XS_TRANSACTION_START",
    [XS_TRANSACTION_END] = "XS_TRANSACTION_END",
    [XS_INTRODUCE] = "XS_INTRODUCE",
    [XS_RELEASE] = "XS_RELEASE",
    [XS_GET_DOMAIN_PATH] = "XS_GET_DOMAIN_PATH",
    [XS_WRITE] = "XS_WRITE",
    [XS_MKDIR] = "XS_MKDIR",
    [XS_RM] = "XS_RM",
    [XS_SET_PERMS] = "XS_SET_PERMS",
    [XS_WATCH_EVENT] = "XS_WATCH_EVENT",
    [XS_ERROR] = "XS_ERROR",
    [XS_IS_DOMAIN_INTRODUCED] = "XS_IS_DOMAIN_INTRODUCED",
    [XS_RESUME] = "XS_RESUME",
    [XS_SET_TARGET] = "XS_SET_TARGET",
    [XS_RESET_WATCHES] = "XS_RESET_WATCHES",
    [XS_DIRECTORY_PART] = "XS_DIRECTORY_PART",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

size_t xsw_encode(void *buf, size_t cap, uint32_t type, uint32_t req_id, uint32_t tx_id,
                  const struct xsw_arg *args, size_t nargs)
{
    struct xsd_sockmsg hdr = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = 0 };
    size_t payload = 0;
    char *out = buf;

    /* Size first, so a request that does not fit leaves buf untouched. */
    for (size_t i = 0; i < nargs; i++) {
        size_t n = args[i].len + (args[i].nul_terminated ? 1 : 0);

        if (n > XENSTORE_PAYLOAD_MAX - payload)
            return 0;
        payload += n;
    }
    if (cap < XSW_HEADER_SIZE || payload > cap - XSW_HEADER_SIZE)
        return 0;

    hdr.len = (uint32_t)payload;
    kmemcpy(out, &hdr, XSW_HEADER_SIZE);
    out += XSW_HEADER_SIZE;
    for (size_t i = 0; i < nargs; i++) {
        kmemcpy(out, args[i].data, args[i].len);
        out += args[i].len;
        if (args[i].nul_terminated)
            *out++ = '\0';
    }
    return XSW_HEADER_SIZE + payload;
}

static struct xsw_arg c_string(const char *s)
{
    return (struct xsw_arg){ .data = s, .len = kstrlen(s), .nul_terminated = true };
}

size_t xsw_encode_read(void *buf, size_t cap, uint32_t req_id, uint32_t tx_id, const char *path)
{
    struct xsw_arg arg = c_string(path);

    return xsw_encode(buf, cap, XS_READ, req_id, tx_id, &arg, 1);
}

size_t xsw_encode_write(void *buf, size_t cap, uint32_t req_id, uint32_t tx_id, const char *path,
                        const char *value, size_t value_len)
{
    /* The value is the rest of the payload: a NUL would become part of it. */
    struct xsw_arg args[2] = {
        c_string(path),
        { .data = value, .len = value_len, .nul_terminated = false },
    };

    return xsw_encode(buf, cap, XS_WRITE, req_id, tx_id, args, 2);
}

size_t xsw_encode_rm(void *buf, size_t cap, uint32_t req_id, uint32_t tx_id, const char *path)
{
    struct xsw_arg arg = c_string(path);

    return xsw_encode(buf, cap, XS_RM, req_id, tx_id, &arg, 1);
}

size_t xsw_encode_watch(void *buf, size_t cap, uint32_t req_id, const char *path,
                        const char *token)
{
    struct xsw_arg args[2] = { c_string(path), c_string(token) };

    return xsw_encode(buf, cap, XS_WATCH, req_id, 0, args, 2);
}

size_t xsw_encode_unwatch(void *buf, size_t cap, uint32_t req_id, const char *path,
                          const char *token)
{
    struct xsw_arg args[2] = { c_string(path), c_string(token) };

    return xsw_encode(buf, cap, XS_UNWATCH, req_id, 0, args, 2);
}

size_t xsw_message_size(const void *buf, size_t avail)
{
    struct xsd_sockmsg hdr;

    if (avail < XSW_HEADER_SIZE)
        return 0;
    kmemcpy(&hdr, buf, XSW_HEADER_SIZE);
    if (hdr.len > XENSTORE_PAYLOAD_MAX)
        return SIZE_MAX;
    return XSW_HEADER_SIZE + hdr.len;
}

bool xsw_decode(const void *buf, size_t size, struct xsw_msg *msg)
{
    struct xsd_sockmsg hdr;

    if (size < XSW_HEADER_SIZE)
        return false;
    kmemcpy(&hdr, buf, XSW_HEADER_SIZE);
    if (hdr.len > XENSTORE_PAYLOAD_MAX || hdr.len != size - XSW_HEADER_SIZE)
        return false;
    msg->type = hdr.type;
    msg->req_id = hdr.req_id;
    msg->tx_id = hdr.tx_id;
    msg->payload = (const char *)buf + XSW_HEADER_SIZE;
    msg->len = hdr.len;
    return true;
}

enum xsw_error xsw_error_from_name(const char *name, size_t len)
{
    for (unsigned i = XSW_EINVAL; i <= XSW_EQUOTA; i++)
        if (kstreq(name, len, error_names[i]))
            return (enum xsw_error)i;
    return XSW_EUNKNOWN;
}

enum xsw_error xsw_reply_error(const struct xsw_msg *msg)
{
    size_t n;

    if (msg->type != XS_ERROR)
        return XSW_OK;
    /* xenstored sends the name with its NUL; accept it without one too. */
    n = kstrnlen(msg->payload, msg->len);
    if (n == 0 || (n != msg->len && n + 1 != msg->len))
        return XSW_EPROTO;
    return xsw_error_from_name(msg->payload, n);
}

bool xsw_decode_watch_event(const struct xsw_msg *msg, const char **path, size_t *path_len,
                            const char **token, size_t *token_len)
{
    size_t plen, rest, tlen;

    if (msg->type != XS_WATCH_EVENT)
        return false;
    plen = kstrnlen(msg->payload, msg->len);
    if (plen == 0 || plen == msg->len)
        return false; /* no path, or no NUL after it */
    rest = msg->len - plen - 1;
    tlen = kstrnlen(msg->payload + plen + 1, rest);
    /* The token ends at its NUL or at the end of the payload; nothing may follow. */
    if (tlen != rest && tlen + 1 != rest)
        return false;
    *path = msg->payload;
    *path_len = plen;
    *token = msg->payload + plen + 1;
    *token_len = tlen;
    return true;
}

const char *xsw_error_name(enum xsw_error err)
{
    if ((unsigned)err < COUNT(error_names) && error_names[err])
        return error_names[err];
    return "EUNKNOWN";
}

const char *xsw_type_name(uint32_t type)
{
    if (type < COUNT(type_names) && type_names[type])
        return type_names[type];
    return "XS_?";
}
