/*
 * codec.h — the client side of RFC 6455 as pure functions.
 *
 * Nothing here opens a socket, reads a clock or allocates: every function
 * works on buffers the caller owns, and every view it returns (a host name,
 * a frame payload) points into the caller's input and is valid for as long
 * as that input is. The same code is unit-tested, fuzzed and used live.
 *
 * The two exceptions are named where they occur: mmws_random_bytes() and
 * mmws_handshake_key() read the OS CSPRNG (getrandom), and the
 * Sec-WebSocket-Accept computation calls OpenSSL's SHA-1, which may
 * allocate internally once per handshake.
 */
#ifndef MMWS_CODEC_H
#define MMWS_CODEC_H

#include <mmws/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size of the detail buffers that parsers fill on error. */
#define MMWS_DETAIL_LEN 128

/* ---------------------------------------------------------------- URL -- */

/* Default bound on the length of a URL, in bytes. */
#define MMWS_URL_DEFAULT_MAX_LEN 2048
/* Flag for mmws_url_parse: accept ws:// (plaintext; tests and benches). */
#define MMWS_URL_ALLOW_PLAINTEXT 0x1u

/*
 * A parsed ws:// or wss:// URL. host and resource point into the string
 * given to mmws_url_parse() and are valid for as long as it is.
 */
typedef struct mmws_url {
    const char *host;       /* host name or address; IPv6 without brackets */
    size_t host_len;
    const char *resource;   /* path and query, from the first '/' or '?';
                               resource_len 0 means "/" */
    size_t resource_len;
    uint16_t port;          /* explicit port, else 443 (wss) or 80 (ws) */
    uint8_t secure;         /* 1 for wss://, 0 for ws:// */
    uint8_t ipv6;           /* 1 if the host was a [bracketed] literal */
    uint8_t port_explicit;  /* 1 if the URL named a port */
} mmws_url;

/*
 * Parses `url` (len bytes; no NUL needed) of the form
 * wss://host[:port][/path][?query]. The scheme is matched
 * case-insensitively; ws:// is accepted only with MMWS_URL_ALLOW_PLAINTEXT.
 * max_len bounds the URL length (0 means MMWS_URL_DEFAULT_MAX_LEN).
 *
 * Returns 0 and fills *out, or one of: MMWS_EINVAL (NULL argument),
 * MMWS_EURL_TOOLONG, MMWS_EURL_CHAR (space, control or non-ASCII byte),
 * MMWS_EURL_SCHEME, MMWS_EURL_PLAINTEXT, MMWS_EURL_USERINFO,
 * MMWS_EURL_HOST, MMWS_EURL_PORT, MMWS_EURL_FRAGMENT. *out is untouched on
 * error.
 */
MMWS_API int mmws_url_parse(const char *url, size_t len, unsigned flags,
                            size_t max_len, mmws_url *out);

/* ---------------------------------------------------------- handshake -- */

#define MMWS_HS_KEY_LEN 24      /* base64 of 16 random bytes */
#define MMWS_HS_ACCEPT_LEN 28   /* base64 of a SHA-1 digest */
/* Default bound on the size of the server's response header, in bytes. */
#define MMWS_HS_DEFAULT_MAX_HEADER 16384

/* One extra request header. Both strings are NUL-terminated. */
typedef struct mmws_header {
    const char *name;
    const char *value;
} mmws_header;

/* Everything the opening request needs. All pointers are borrowed. */
typedef struct mmws_handshake_request {
    const mmws_url *url;
    const char *key;                   /* MMWS_HS_KEY_LEN chars + NUL */
    const char *const *subprotocols;   /* offered, in order of preference */
    size_t subprotocol_count;
    const mmws_header *headers;        /* extra headers, sent in order */
    size_t header_count;
} mmws_handshake_request;

/*
 * Fills buf with len bytes from the OS CSPRNG (getrandom, retried on
 * EINTR and short reads). Returns 0, MMWS_EINVAL (buf NULL with len > 0)
 * or MMWS_ESYS.
 */
MMWS_API int mmws_random_bytes(void *buf, size_t len);

/*
 * Writes a fresh Sec-WebSocket-Key (16 random bytes, base64) and a NUL into
 * key. Returns 0, MMWS_EINVAL (key NULL) or MMWS_ESYS.
 */
MMWS_API int mmws_handshake_key(char key[MMWS_HS_KEY_LEN + 1]);

/*
 * Computes the Sec-WebSocket-Accept value for key (RFC 6455 4.2.2: base64
 * of SHA-1 of key + GUID) and writes it with a NUL into accept.
 * Returns 0, MMWS_EINVAL, or MMWS_ESYS if OpenSSL failed.
 */
MMWS_API int mmws_handshake_accept(const char *key, size_t key_len,
                                   char accept[MMWS_HS_ACCEPT_LEN + 1]);

/*
 * Writes the HTTP/1.1 upgrade request into buf (cap bytes) and its length
 * into *out_len; no NUL is written. Host carries the port only when it is
 * not the scheme's default. Header names and subprotocols must be HTTP
 * tokens; values must not contain CR, LF, NUL or any other control
 * character but HTAB; headers the handshake owns (Host, Upgrade,
 * Connection, Sec-WebSocket-Key/-Version/-Protocol/-Extensions) are
 * refused. A url filled by hand is checked too (non-empty host, port > 0,
 * no space or control byte, resource starting with '/' or '?').
 *
 * Returns 0, MMWS_EINVAL (NULL, a key that is not 22 base64 characters
 * and "==", or a malformed url), MMWS_EHS_HEADER,
 * MMWS_EHS_SUBPROTOCOL, or MMWS_ENOSPC (nothing useful is in buf then).
 */
MMWS_API int mmws_handshake_build(const mmws_handshake_request *req,
                                  char *buf, size_t cap, size_t *out_len);

/*
 * State for checking the server's answer. Initialise with
 * mmws_handshake_parser_init(); the fields below "results" are read after
 * mmws_handshake_parse() returns.
 */
typedef struct mmws_handshake_parser {
    char accept[MMWS_HS_ACCEPT_LEN + 1]; /* expected Sec-WebSocket-Accept */
    const char *const *subprotocols;     /* offered (borrowed) */
    size_t subprotocol_count;
    size_t max_header;   /* bound on the header size */
    size_t scanned;      /* bytes already searched for the blank line */
    /* results */
    int status;          /* HTTP status, 0 until the status line is read */
    int protocol_index;  /* subprotocols[i] the server chose, or -1 */
    uint32_t retry_after_s; /* Retry-After seconds (non-101), 0 if absent */
    size_t header_len;   /* header bytes, once complete */
    char detail[MMWS_DETAIL_LEN]; /* what was wrong, after an error */
} mmws_handshake_parser;

/*
 * Prepares p to check the answer to a request sent with key and the given
 * subprotocols (borrowed; they must outlive p). max_header 0 means
 * MMWS_HS_DEFAULT_MAX_HEADER. Returns 0, MMWS_EINVAL or MMWS_ESYS.
 */
MMWS_API int mmws_handshake_parser_init(mmws_handshake_parser *p,
                                        const char *key,
                                        const char *const *subprotocols,
                                        size_t subprotocol_count,
                                        size_t max_header);

/*
 * Parses the server's response. buf holds every byte received so far,
 * starting with the first byte of the response, and len grows from call to
 * call (any split is fine; already-scanned bytes are not searched again).
 *
 * Returns 0 when the header is complete and valid: p->header_len bytes are
 * the header and buf[p->header_len .. len) are the first WebSocket bytes,
 * to be given to the frame parser. Returns MMWS_EINCOMPLETE when more bytes
 * are needed, or an error: MMWS_EHS_TOOBIG, MMWS_EHS_MALFORMED,
 * MMWS_EHS_STATUS (p->status holds the code, e.g. 429; p->retry_after_s
 * any Retry-After), MMWS_EHS_UPGRADE, MMWS_EHS_CONNECTION, MMWS_EHS_ACCEPT,
 * MMWS_EHS_PROTOCOL, MMWS_EHS_EXTENSION. p->detail says what was wrong.
 */
MMWS_API int mmws_handshake_parse(mmws_handshake_parser *p, const char *buf,
                                  size_t len);

/* ------------------------------------------------------------- frames -- */

typedef enum mmws_opcode {
    MMWS_OP_CONT = 0x0,
    MMWS_OP_TEXT = 0x1,
    MMWS_OP_BINARY = 0x2,
    MMWS_OP_CLOSE = 0x8,
    MMWS_OP_PING = 0x9,
    MMWS_OP_PONG = 0xA
} mmws_opcode;

#define MMWS_FRAME_MAX_HEADER 14       /* client frame, 64-bit length */
#define MMWS_CONTROL_MAX_PAYLOAD 125
#define MMWS_CLOSE_MAX_REASON 123
/* Flag for mmws_frame_parser_init: validate the UTF-8 of TEXT messages. */
#define MMWS_FRAME_VALIDATE_UTF8 0x1u

/* One server frame, as found by mmws_frame_parse(). */
typedef struct mmws_frame {
    const uint8_t *payload;  /* into the caller's input (never masked) */
    uint64_t payload_len;
    uint64_t frame_len;      /* header + payload; on MMWS_EINCOMPLETE the
                                number of bytes needed to go on (at least
                                the whole header, the whole frame once the
                                header is known) */
    uint8_t header_len;      /* 2, 4 or 10 */
    uint8_t opcode;          /* as on the wire (CONT for continuations) */
    uint8_t fin;             /* 1 on the last frame of a message */
    uint8_t rsv;             /* RSV1..RSV3 as bits 2..0 */
    uint8_t message_opcode;  /* TEXT or BINARY for data frames (the first
                                frame's opcode for continuations); the
                                opcode itself for control frames */
} mmws_frame;

/* Per-connection receive state; plain data, no allocation. */
typedef struct mmws_frame_parser {
    uint64_t max_message;    /* bound on a frame and on a whole message */
    uint64_t message_len;    /* payload bytes of the open fragmented message */
    uint32_t utf8_state;     /* validator state across text fragments */
    uint8_t message_opcode;  /* opcode of the open fragmented message, 0 if
                                none */
    uint8_t flags;           /* MMWS_FRAME_* */
    uint8_t rsv_allowed;     /* RSV bits negotiated by extensions (none) */
    uint16_t close_code;     /* after an error: the close code to send */
    char detail[MMWS_DETAIL_LEN]; /* after an error: what was wrong */
} mmws_frame_parser;

/*
 * Prepares p. max_message (> 0) bounds each frame and each reassembled
 * message (the seed's max_frame_size); flags is 0 or
 * MMWS_FRAME_VALIDATE_UTF8. Returns 0 or MMWS_EINVAL.
 */
MMWS_API int mmws_frame_parser_init(mmws_frame_parser *p,
                                    uint64_t max_message, unsigned flags);

/*
 * Looks for one complete server frame at the start of buf (len bytes).
 *
 * Returns 0 with *f filled (f->payload points into buf; consume
 * f->frame_len bytes and call again for the next frame); MMWS_EINCOMPLETE
 * with f->frame_len set to the bytes needed (nothing in p changes, so call
 * again with the same bytes and more); or an error, with p->close_code the
 * RFC close code to send and p->detail naming the violation:
 *   MMWS_EPROTO (1002): masked frame, RSV bits without an extension,
 *     reserved opcode, fragmented or over-long control frame, 64-bit length
 *     with the MSB set, continuation without a start, new data frame inside
 *     a fragmented message, close payload of one byte or with a code not
 *     valid to receive (non-minimal length encodings are accepted);
 *   MMWS_ETOOBIG (1009): frame or message longer than max_message;
 *   MMWS_EUTF8 (1007): invalid UTF-8 in a TEXT message (with
 *     MMWS_FRAME_VALIDATE_UTF8; reported on the frame that makes it
 *     invalid, truncation on the final frame) or in a close reason.
 * After an error the connection must be failed; p is not reusable until
 * re-initialised.
 */
MMWS_API int mmws_frame_parse(mmws_frame_parser *p, const uint8_t *buf,
                              size_t len, mmws_frame *f);

/* Header length of a client (masked) frame with this payload: 6, 8 or 14. */
MMWS_API size_t mmws_frame_header_len(uint64_t payload_len);

/*
 * Writes a masked client frame header into out (cap bytes) and its length
 * into *out_len. opcode must be a defined opcode; control frames must have
 * fin set and payload_len <= 125. Returns 0, MMWS_EOPCODE, MMWS_EPROTO
 * (fragmented or over-long control frame), MMWS_EINVAL or MMWS_ENOSPC.
 */
MMWS_API int mmws_frame_write_header(uint8_t *out, size_t cap, unsigned opcode,
                                     int fin, uint64_t payload_len,
                                     const uint8_t mask[4], size_t *out_len);

/*
 * Builds a whole client frame into out: the header, then payload copied and
 * masked with mask. CLOSE payloads are checked as by
 * mmws_frame_build_close(). Returns 0 (length in *out_len) or an error of
 * mmws_frame_write_header(), MMWS_ECLOSECODE, MMWS_EUTF8.
 */
MMWS_API int mmws_frame_build(uint8_t *out, size_t cap, unsigned opcode,
                              int fin, const void *payload, size_t len,
                              const uint8_t mask[4], size_t *out_len);

/*
 * Turns a payload already in the caller's buffer into a frame in place, so
 * it goes out with one write: the payload starts at payload and has at
 * least `headroom` writable bytes before it (MMWS_FRAME_MAX_HEADER always
 * suffices). The header is written immediately before the payload, the
 * payload is masked in place, and *frame / *frame_len give the frame.
 * Errors as mmws_frame_build(), plus MMWS_ENOSPC if headroom is too small.
 */
MMWS_API int mmws_frame_wrap(uint8_t *payload, size_t len, size_t headroom,
                             unsigned opcode, int fin, const uint8_t mask[4],
                             uint8_t **frame, size_t *frame_len);

/*
 * Builds a CLOSE frame with code and reason (reason_len <= 123 bytes of
 * valid UTF-8). code 0 sends an empty close (no status); any other code must
 * be valid to send. Returns 0, MMWS_ECLOSECODE, MMWS_ERANGE (reason too
 * long), MMWS_EUTF8, MMWS_EINVAL or MMWS_ENOSPC.
 */
MMWS_API int mmws_frame_build_close(uint8_t *out, size_t cap, unsigned code,
                                    const char *reason, size_t reason_len,
                                    const uint8_t mask[4], size_t *out_len);

/* ------------------------------------------------------------ masking -- */

/*
 * XORs data[0..len) in place with key, starting at key byte (offset & 3):
 * pass the payload position of data[0] as offset to mask a payload in
 * pieces. Any alignment and length; data may be NULL only when len is 0,
 * key must point to 4 bytes (not checked: this is the send hot path).
 * Uses the fastest variant this CPU supports (AVX2, SSE2 or portable
 * 64-bit), chosen once at first use. (AVX-512 was measured and did not
 * pay: see src/codec/mask.c.)
 */
MMWS_API void mmws_mask(uint8_t *data, size_t len, const uint8_t key[4],
                        size_t offset);

/* Name of the variant mmws_mask() uses: "avx2", "sse2" or "scalar". */
MMWS_API const char *mmws_mask_impl(void);

/* -------------------------------------------------------------- UTF-8 -- */

#define MMWS_UTF8_ACCEPT 0u  /* validator state between code points */

/*
 * Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). *state starts at MMWS_UTF8_ACCEPT and carries a
 * code point split across calls. Returns 0 if s is valid so far, or
 * MMWS_EUTF8 as soon as it cannot be: the state then stays invalid (never
 * MMWS_UTF8_ACCEPT again), and a state these functions did not produce
 * counts as invalid. MMWS_EINVAL for a NULL state, or s NULL with len > 0.
 * Noncharacters (U+FFFE, U+FFFF, ...) are valid UTF-8 and accepted.
 */
MMWS_API int mmws_utf8_validate(uint32_t *state, const uint8_t *s, size_t len);

/* Returns 0 if state is between code points, MMWS_EUTF8 if a sequence was
 * left unfinished (call at the end of a message). */
MMWS_API int mmws_utf8_finish(uint32_t state);

/* Validates a whole string: mmws_utf8_validate() then mmws_utf8_finish(). */
MMWS_API int mmws_utf8_check(const uint8_t *s, size_t len);

/* -------------------------------------------------------- close codes -- */

/* RFC 6455 7.4 and the IANA registry. A separate space from MMWS_E*. */
typedef enum mmws_close_code {
    MMWS_CLOSE_NORMAL = 1000,
    MMWS_CLOSE_GOING_AWAY = 1001,
    MMWS_CLOSE_PROTOCOL_ERROR = 1002,
    MMWS_CLOSE_UNSUPPORTED_DATA = 1003,
    MMWS_CLOSE_NO_STATUS = 1005,        /* never on the wire */
    MMWS_CLOSE_ABNORMAL = 1006,         /* never on the wire */
    MMWS_CLOSE_INVALID_DATA = 1007,
    MMWS_CLOSE_POLICY = 1008,
    MMWS_CLOSE_TOO_BIG = 1009,
    MMWS_CLOSE_MANDATORY_EXT = 1010,
    MMWS_CLOSE_INTERNAL_ERROR = 1011,
    MMWS_CLOSE_SERVICE_RESTART = 1012,  /* IANA; received only */
    MMWS_CLOSE_TRY_AGAIN_LATER = 1013,  /* IANA; received only */
    MMWS_CLOSE_BAD_GATEWAY = 1014,      /* IANA; received only */
    MMWS_CLOSE_TLS_HANDSHAKE = 1015     /* never on the wire */
} mmws_close_code;

/* 1 if a client may send code: 1000-1003, 1007-1011, 3000-4999. */
MMWS_API int mmws_close_code_valid_send(unsigned code);

/* 1 if code is acceptable in a received close: the send set plus the
 * IANA-registered 1012-1014 that servers send on restarts. */
MMWS_API int mmws_close_code_valid_recv(unsigned code);

/* Name of a close code ("normal", "protocol error", ... "application"). */
MMWS_API const char *mmws_close_code_name(unsigned code);

/*
 * Splits a received CLOSE payload. An empty payload gives code 1005 (no
 * status) and an empty reason. Returns 0, MMWS_EPROTO (one-byte payload,
 * payload over 125 bytes, or code not valid to receive) or MMWS_EUTF8
 * (reason not UTF-8). reason points into payload.
 */
MMWS_API int mmws_close_parse(const uint8_t *payload, size_t len,
                              unsigned *code, const uint8_t **reason,
                              size_t *reason_len);

#ifdef __cplusplus
}
#endif

#endif /* MMWS_CODEC_H */
