/*
 * Xenstore wire codec: byte buffers in, byte buffers out; no ring, no I/O.
 *
 * Why apart from the ring client: message framing and payload conventions are where a client
 * breaks in subtle ways (a missing NUL, a value written with one, a reply matched to the wrong
 * request), and they can be tested on the host. The ring client (kernel/xen/) copies bytes
 * between the shared ring and a message buffer and uses these functions on whole messages.
 *
 * Conventions (docs/misc/xenstore.txt in Xen): a message is struct xsd_sockmsg (host byte order)
 * followed by `len` <= XENSTORE_PAYLOAD_MAX payload bytes. Path and token arguments end in a NUL;
 * the value of XS_WRITE is the rest of the payload and has none. Replies echo req_id and tx_id.
 * XS_ERROR replies carry an errno name such as "ENOENT\0"; XS_WATCH_EVENT messages arrive
 * unsolicited (req_id 0) with payload "path\0token\0".
 */
#ifndef XTV_XS_WIRE_H
#define XTV_XS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xen/io/xs_wire.h>

#define XSW_HEADER_SIZE ((size_t)sizeof(struct xsd_sockmsg))
#define XSW_MESSAGE_MAX (XSW_HEADER_SIZE + XENSTORE_PAYLOAD_MAX)

/* Xenstore's error names (xs_wire.h's xsd_errors, which needs errno.h, so not usable here). */
enum xsw_error {
    XSW_OK = 0,
    XSW_EINVAL,
    XSW_EACCES,
    XSW_EEXIST,
    XSW_EISDIR,
    XSW_ENOENT,
    XSW_ENOMEM,
    XSW_ENOSPC,
    XSW_EIO,
    XSW_ENOTEMPTY,
    XSW_ENOSYS,
    XSW_EROFS,
    XSW_EBUSY,
    XSW_EAGAIN,
    XSW_EISCONN,
    XSW_E2BIG,
    XSW_EPERM,
    XSW_EQUOTA,   /* not in xs_wire.h: oxenstored's answer when a domain's quota is reached */
    XSW_EUNKNOWN, /* a name we do not know */
    XSW_EPROTO,   /* the codec's own verdict: malformed message or payload */
};

/* One request argument; nul_terminated is true for paths and tokens, false for a written value. */
struct xsw_arg {
    const char *data;
    size_t len;
    bool nul_terminated;
};

/*
 * Encode a request of `type` with its arguments into buf. Returns the message size in bytes,
 * or 0 when it does not fit in cap or the payload would exceed XENSTORE_PAYLOAD_MAX.
 */
size_t xsw_encode(void *buf, size_t cap, uint32_t type, uint32_t req_id, uint32_t tx_id,
                  const struct xsw_arg *args, size_t nargs);

/* The common requests. Paths and tokens are C strings. */
size_t xsw_encode_read(void *buf, size_t cap, uint32_t req_id, uint32_t tx_id, const char *path);
size_t xsw_encode_write(void *buf, size_t cap, uint32_t req_id, uint32_t tx_id, const char *path,
                        const char *value, size_t value_len);
size_t xsw_encode_rm(void *buf, size_t cap, uint32_t req_id, uint32_t tx_id, const char *path);
size_t xsw_encode_watch(void *buf, size_t cap, uint32_t req_id, const char *path,
                        const char *token);
size_t xsw_encode_unwatch(void *buf, size_t cap, uint32_t req_id, const char *path,
                          const char *token);

/*
 * Look at the first `avail` bytes received. Returns the total size of the first message once its
 * header is complete (the caller then waits until that many bytes are there), 0 while fewer than
 * XSW_HEADER_SIZE bytes are available, and SIZE_MAX when the header is impossible
 * (len > XENSTORE_PAYLOAD_MAX): the stream cannot be resynchronised.
 */
size_t xsw_message_size(const void *buf, size_t avail);

/* A complete message, split. payload points into the caller's buffer. */
struct xsw_msg {
    uint32_t type;
    uint32_t req_id;
    uint32_t tx_id;
    const char *payload;
    size_t len;
};

/* Split a complete message of `size` bytes (as given by xsw_message_size). false if malformed. */
bool xsw_decode(const void *buf, size_t size, struct xsw_msg *msg);

/*
 * For a reply: XSW_OK unless it is an XS_ERROR, then the error named in the payload
 * (XSW_EUNKNOWN for a name we do not know, XSW_EPROTO for a payload that is not a name).
 */
enum xsw_error xsw_reply_error(const struct xsw_msg *msg);

/* Split an XS_WATCH_EVENT payload "path\0token\0" (the last NUL may be missing). */
bool xsw_decode_watch_event(const struct xsw_msg *msg, const char **path, size_t *path_len,
                            const char **token, size_t *token_len);

/* "ENOENT" etc., for log lines; "EUNKNOWN", "EPROTO" for the codec's own values. */
const char *xsw_error_name(enum xsw_error err);
/* The name as received -> the enum (XSW_EUNKNOWN if not known). */
enum xsw_error xsw_error_from_name(const char *name, size_t len);

/* Name of a message type ("XS_READ"), for log lines; "XS_?" for unknown ones. */
const char *xsw_type_name(uint32_t type);

#endif
