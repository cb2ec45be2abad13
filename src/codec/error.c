/* error.c — names and descriptions of the MMWS_E* codes, and the
 * per-thread last-error sentence. */
#include <stdarg.h>
#include <stdio.h>

#include <mmws/common.h>

#include "codec/err_internal.h"

/* One row per code: the value, its constant's name, and what it means. */
#define MMWS_ERRORS(X)                                                        \
    X(MMWS_OK, "success")                                                     \
    X(MMWS_EINVAL, "invalid argument")                                        \
    X(MMWS_ENOMEM, "out of memory")                                           \
    X(MMWS_ENOSPC, "output buffer too small")                                 \
    X(MMWS_EINCOMPLETE, "more input needed")                                  \
    X(MMWS_ESYS, "system call failed")                                        \
    X(MMWS_ERANGE, "value exceeds its configured bound")                      \
    X(MMWS_EURL_SCHEME, "URL scheme must be wss:// (or ws://)")               \
    X(MMWS_EURL_PLAINTEXT, "ws:// (plaintext) URL given but not allowed")     \
    X(MMWS_EURL_HOST, "URL host is empty or malformed")                       \
    X(MMWS_EURL_PORT, "URL port is not a number in 1..65535")                 \
    X(MMWS_EURL_CHAR, "URL contains a space, control or non-ASCII character") \
    X(MMWS_EURL_TOOLONG, "URL is longer than the maximum length")             \
    X(MMWS_EURL_USERINFO, "URL user:password@ is not supported")              \
    X(MMWS_EURL_FRAGMENT, "URL #fragment is not allowed in WebSocket URLs")   \
    X(MMWS_EHS_HEADER, "invalid or reserved request header")                  \
    X(MMWS_EHS_MALFORMED, "handshake response is not valid HTTP/1.1")         \
    X(MMWS_EHS_TOOBIG, "handshake response header exceeds the maximum size")  \
    X(MMWS_EHS_STATUS, "handshake response status is not 101")                \
    X(MMWS_EHS_UPGRADE, "handshake response lacks Upgrade: websocket")        \
    X(MMWS_EHS_CONNECTION, "handshake response lacks Connection: upgrade")    \
    X(MMWS_EHS_ACCEPT, "Sec-WebSocket-Accept missing or wrong")               \
    X(MMWS_EHS_PROTOCOL, "server selected a subprotocol that was not offered")\
    X(MMWS_EHS_EXTENSION, "server selected an extension that was not offered")\
    X(MMWS_EHS_SUBPROTOCOL, "requested subprotocol is not an HTTP token")     \
    X(MMWS_EPROTO, "WebSocket protocol violation")                            \
    X(MMWS_ETOOBIG, "frame or message larger than the maximum")               \
    X(MMWS_EUTF8, "invalid UTF-8")                                            \
    X(MMWS_ECLOSECODE, "close code not valid on the wire")                    \
    X(MMWS_EOPCODE, "opcode not valid here")                                  \
    X(MMWS_ENOTCONN, "not connected; nothing was sent")                      \
    X(MMWS_ECONFIG, "invalid configuration")                                 \
    X(MMWS_EDNS, "name resolution failed")                                   \
    X(MMWS_ECONNECT, "TCP connect failed")                                   \
    X(MMWS_ETIMEDOUT, "timed out")                                           \
    X(MMWS_ETLS, "TLS failure")                                              \
    X(MMWS_ECLOSED, "connection closed by the peer")                         \
    X(MMWS_EQUEUEFULL, "send queue full")                                    \
    X(MMWS_ERATELIMIT, "outbound message budget exceeded")                   \
    X(MMWS_EWANTREAD, "transport would block until readable")                \
    X(MMWS_EWANTWRITE, "transport would block until writable")               \
    X(MMWS_EDEAD, "connection declared dead (no pong or no data)")           \
    X(MMWS_EIO, "socket I/O error")                                          \
    X(MMWS_ESTATE, "not valid in the current state")

const char *mmws_strerror(int code) {
    switch (code) {
#define MMWS_X_STR(name, text) \
    case name:                 \
        return text;
        MMWS_ERRORS(MMWS_X_STR)
#undef MMWS_X_STR
    default:
        return "unknown error";
    }
}

const char *mmws_errname(int code) {
    switch (code) {
#define MMWS_X_NAME(name, text) \
    case name:                  \
        return #name;
        MMWS_ERRORS(MMWS_X_NAME)
#undef MMWS_X_NAME
    default:
        return "MMWS_E?";
    }
}

const char *mmws_version(void) { return MMWS_VERSION_STRING; }

/* The sentence behind the last failing constructor on this thread. */
static _Thread_local char tl_last_error[256];

void mmws__set_last_error(const char *text) {
    snprintf(tl_last_error, sizeof tl_last_error, "%s", text);
}

const char *mmws_last_error(void) { return tl_last_error; }

void mmws__detail(char *buf, size_t len, const char *fmt, ...) {
    if (buf == NULL || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
