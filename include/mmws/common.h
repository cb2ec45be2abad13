/*
 * mmws — low-latency WebSocket client library.
 *
 * common.h: the export macro, the version, and the error codes every layer
 * returns. Functions return 0 (or a non-negative count) on success and a
 * negative MMWS_E* code on failure; mmws_strerror() names the code. Objects
 * that can fail later also keep a human-readable detail string.
 */
#ifndef MMWS_COMMON_H
#define MMWS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(MMWS_STATIC)
#define MMWS_API
#elif defined(MMWS_BUILDING)
#define MMWS_API __attribute__((visibility("default")))
#else
#define MMWS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define MMWS_VERSION_MAJOR 0
#define MMWS_VERSION_MINOR 1
#define MMWS_VERSION_PATCH 0
#define MMWS_VERSION_STRING "0.1.0"

/*
 * Error codes, grouped by kind. The numeric values are part of the ABI:
 * new codes are appended inside their group, never renumbered.
 */
typedef enum mmws_error {
    MMWS_OK = 0,

    /* generic: -1 .. -19 */
    MMWS_EINVAL = -1,       /* an argument is invalid (NULL, out of range) */
    MMWS_ENOMEM = -2,       /* an allocation failed */
    MMWS_ENOSPC = -3,       /* the caller's output buffer is too small */
    MMWS_EINCOMPLETE = -4,  /* more input is needed; not a failure */
    MMWS_ESYS = -5,         /* a system call failed (see errno / detail) */
    MMWS_ERANGE = -6,       /* a value exceeds a configured bound */

    /* URL: -20 .. -39 */
    MMWS_EURL_SCHEME = -20,    /* scheme is not wss:// (or ws://) */
    MMWS_EURL_PLAINTEXT = -21, /* ws:// given but plaintext not allowed */
    MMWS_EURL_HOST = -22,      /* host empty or malformed */
    MMWS_EURL_PORT = -23,      /* port empty, not a number, or not 1..65535 */
    MMWS_EURL_CHAR = -24,      /* space, control or non-ASCII character */
    MMWS_EURL_TOOLONG = -25,   /* URL longer than the configured maximum */
    MMWS_EURL_USERINFO = -26,  /* user:password@ is not supported */
    MMWS_EURL_FRAGMENT = -27,  /* #fragment is not allowed (RFC 6455 3) */

    /* handshake: -40 .. -59 */
    MMWS_EHS_HEADER = -40,     /* user header name/value invalid (CR, LF, NUL,
                                  not a token, or a reserved header) */
    MMWS_EHS_MALFORMED = -41,  /* response is not valid HTTP/1.1 */
    MMWS_EHS_TOOBIG = -42,     /* response header exceeds the bound */
    MMWS_EHS_STATUS = -43,     /* status is not 101 (code in the parser) */
    MMWS_EHS_UPGRADE = -44,    /* Upgrade header missing or not websocket */
    MMWS_EHS_CONNECTION = -45, /* Connection header lacks "upgrade" */
    MMWS_EHS_ACCEPT = -46,     /* Sec-WebSocket-Accept missing or wrong */
    MMWS_EHS_PROTOCOL = -47,   /* server chose a subprotocol not offered */
    MMWS_EHS_EXTENSION = -48,  /* server chose an extension not offered */
    MMWS_EHS_SUBPROTOCOL = -49,/* a requested subprotocol is not a token */

    /* frames and messages: -60 .. -79 */
    MMWS_EPROTO = -60,       /* RFC 6455 protocol violation (close 1002) */
    MMWS_ETOOBIG = -61,      /* frame or message over the maximum (1009) */
    MMWS_EUTF8 = -62,        /* invalid UTF-8 in text or reason (1007) */
    MMWS_ECLOSECODE = -63,   /* close code not valid on the wire */
    MMWS_EOPCODE = -64,      /* opcode not valid for this call */

    /* network and connection: -80 .. -109 */
    MMWS_ENOTCONN = -80,     /* not connected: nothing was sent */
    MMWS_ECONFIG = -81,      /* a config field is invalid (detail names it) */
    MMWS_EDNS = -82,         /* name resolution failed */
    MMWS_ECONNECT = -83,     /* TCP connect failed (refused, unreachable) */
    MMWS_ETIMEDOUT = -84,    /* connect, handshake or close timed out */
    MMWS_ETLS = -85,         /* TLS failure (detail has OpenSSL's reason) */
    MMWS_ECLOSED = -86,      /* the peer closed the connection */
    MMWS_EQUEUEFULL = -87,   /* the send queue is at its bound */
    MMWS_ERATELIMIT = -88,   /* the outbound message budget is spent */
    MMWS_EWANTREAD = -89,    /* transport: retry when readable */
    MMWS_EWANTWRITE = -90,   /* transport: retry when writable */
    MMWS_EDEAD = -91,        /* no pong or no bytes within the bound */
    MMWS_EIO = -92,          /* socket read or write failed (errno) */
    MMWS_ESTATE = -93        /* call not valid in the current state */
} mmws_error;

/*
 * One message, as every layer hands it on. From a connection's callback,
 * data is valid only until the callback returns (it points into the read
 * or reassembly buffer); from a ring, until the next consume. Copy what
 * you keep.
 */
typedef struct mmws_msg {
    const uint8_t *data;
    size_t len;
    uint8_t opcode;     /* MMWS_OP_TEXT or MMWS_OP_BINARY */
    uint64_t recv_ns;   /* CLOCK_MONOTONIC right after the read syscall that
                           completed the message */
    uint64_t conn_id;
    uint64_t seq;       /* per connection, from 1, over its whole life */
} mmws_msg;

/*
 * Returns a static, human-readable description of an MMWS_E* code, or
 * "unknown error" for a value that is not one. Never NULL.
 */
MMWS_API const char *mmws_strerror(int code);

/* Returns the name of the code's constant ("MMWS_EPROTO"), never NULL. */
MMWS_API const char *mmws_errname(int code);

/* The sentence behind the last failing mmws_*_new() on this thread (what
 * and why, naming the config field); "" if none. */
MMWS_API const char *mmws_last_error(void);

/* Returns MMWS_VERSION_STRING of the library actually linked. */
MMWS_API const char *mmws_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MMWS_COMMON_H */
