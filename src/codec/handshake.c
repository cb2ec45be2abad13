/*
 * handshake.c — the client side of the RFC 6455 opening handshake: the
 * nonce, the expected Sec-WebSocket-Accept, the upgrade request, and an
 * incremental checker for the server's HTTP/1.1 response.
 *
 * Only mmws_random_bytes() (getrandom) and mmws_handshake_accept()
 * (OpenSSL SHA-1 and base64) reach outside the caller's buffers.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include <mmws/codec.h>

/* RFC 6455 1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
#define WS_GUID_LEN (sizeof ws_guid - 1)
/* Longest key mmws_handshake_accept() hashes; real keys are 24 bytes. */
#define HS_MAX_KEY 128
/* Cap on a Retry-After delay, in seconds (one day). */
#define HS_MAX_RETRY_AFTER 86400u

/* ------------------------------------------------------- characters -- */

/* Lower-cases an ASCII letter; other bytes are returned unchanged. */
static unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* 1 if c is an RFC 9110 tchar (a byte allowed in a token). */
static int is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* 1 if s[0..n) is a non-empty token. */
static int is_token(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return 0;
    return 1;
}

/* 1 if c may appear in a field value or reason phrase: HTAB, SP, VCHAR or
 * obs-text, i.e. anything but the other control characters and DEL. */
static int is_field_char(unsigned char c) {
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

/* 1 if c is a base64 alphabet character (not padding). */
static int is_b64(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* 1 if a[0..n) equals the NUL-terminated b, ignoring ASCII case. */
static int eq_ci(const char *a, size_t n, const char *b) {
    size_t i = 0;
    for (; i < n; i++) {
        if (b[i] == '\0') return 0;
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
    }
    return b[i] == '\0';
}

/* 1 if the NUL-terminated key is a Sec-WebSocket-Key: base64 of 16 bytes,
 * that is 22 alphabet characters and "==". */
static int key_valid(const char *key) {
    for (size_t i = 0; i < MMWS_HS_KEY_LEN - 2; i++)
        if (!is_b64((unsigned char)key[i])) return 0;
    return key[MMWS_HS_KEY_LEN - 2] == '=' && key[MMWS_HS_KEY_LEN - 1] == '=' &&
           key[MMWS_HS_KEY_LEN] == '\0';
}

/* Narrows s[0..*n) by removing optional whitespace (SP, HTAB) at both
 * ends; returns the new start. */
static const char *trim_ows(const char *s, size_t *n) {
    size_t b = 0, e = *n;
    while (b < e && (s[b] == ' ' || s[b] == '\t')) b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
    *n = e - b;
    return s + b;
}

/* 1 if the comma-separated list v[0..n) has an element equal to tok,
 * ignoring ASCII case and the whitespace around elements. */
static int list_has_token(const char *v, size_t n, const char *tok) {
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && v[j] != ',') j++;
        size_t el = j - i;
        const char *e = trim_ows(v + i, &el);
        if (eq_ci(e, el, tok)) return 1;
        i = j + 1;
    }
    return 0;
}

/* ------------------------------------------------------ random, key -- */

/* Loops because getrandom may return short counts for large requests and
 * fail with EINTR when a signal arrives while it blocks at early boot. */
int mmws_random_bytes(void *buf, size_t len) {
    unsigned char *p = buf;
    if (p == NULL && len > 0) return MMWS_EINVAL;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return MMWS_ESYS;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 16 CSPRNG bytes in base64 always end in "==", as key_valid() expects. */
int mmws_handshake_key(char key[MMWS_HS_KEY_LEN + 1]) {
    unsigned char nonce[16];
    if (key == NULL) return MMWS_EINVAL;
    int rc = mmws_random_bytes(nonce, sizeof nonce);
    if (rc != 0) return rc;
    EVP_EncodeBlock((unsigned char *)key, nonce, (int)sizeof nonce);
    return 0;
}

/* Hashes key + GUID from one stack buffer, so key_len is bounded. */
int mmws_handshake_accept(const char *key, size_t key_len,
                          char accept[MMWS_HS_ACCEPT_LEN + 1]) {
    char text[HS_MAX_KEY + WS_GUID_LEN];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (key == NULL || accept == NULL || key_len == 0 || key_len > HS_MAX_KEY)
        return MMWS_EINVAL;
    memcpy(text, key, key_len);
    memcpy(text + key_len, ws_guid, WS_GUID_LEN);
    /* OpenSSL may allocate inside EVP_Digest (fetching the SHA-1
     * implementation); this runs once per handshake, never per message. */
    if (EVP_Digest(text, key_len + WS_GUID_LEN, digest, &digest_len,
                   EVP_sha1(), NULL) != 1 ||
        digest_len != 20)
        return MMWS_ESYS;
    EVP_EncodeBlock((unsigned char *)accept, digest, (int)digest_len);
    return 0;
}

/* ---------------------------------------------------------- request -- */

/* Appends to a caller buffer without ever writing past its capacity. */
typedef struct writer {
    /* The caller's buffer. */
    char *buf;
    /* Its capacity in bytes. */
    size_t cap;
    /* Bytes written so far. */
    size_t len;
    /* Set once an append did not fit; later appends are ignored. */
    int full;
} writer;

/* Appends s[0..n), or marks w full if it does not fit. */
static void put(writer *w, const char *s, size_t n) {
    if (w->full) return;
    if (n > w->cap - w->len) {
        w->full = 1;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

/* Appends a NUL-terminated string. */
static void puts_w(writer *w, const char *s) { put(w, s, strlen(s)); }

/* Appends v in decimal. */
static void put_uint(writer *w, unsigned v) {
    char digits[10];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n] = (char)('0' + v % 10u);
        v /= 10u;
        n++;
    } while (v != 0);
    put(w, digits + sizeof digits - n, n);
}

/* 1 if every byte of s[0..n) is printable ASCII (no SP, CTL or 8-bit),
 * so a hand-filled mmws_url cannot inject into the request. */
static int is_visible(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7F) return 0;
    }
    return 1;
}

/* 1 if the header name is one the handshake itself sends or reserves. */
static int is_reserved_header(const char *name, size_t n) {
    static const char *const reserved[] = {
        "Host", "Upgrade", "Connection", "Sec-WebSocket-Key",
        "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (eq_ci(name, n, reserved[i])) return 1;
    return 0;
}

/*
 * Checks everything in req before a byte is written: returns 0,
 * MMWS_EINVAL, MMWS_EHS_SUBPROTOCOL or MMWS_EHS_HEADER.
 */
static int check_request(const mmws_handshake_request *req) {
    const mmws_url *u = req->url;
    if (u == NULL || req->key == NULL || !key_valid(req->key))
        return MMWS_EINVAL;
    if (u->host == NULL || u->host_len == 0 || u->port == 0 ||
        !is_visible(u->host, u->host_len) ||
        (u->resource_len > 0 &&
         (u->resource == NULL || !is_visible(u->resource, u->resource_len) ||
          (u->resource[0] != '/' && u->resource[0] != '?'))))
        return MMWS_EINVAL;
    if ((req->subprotocol_count > 0 && req->subprotocols == NULL) ||
        (req->header_count > 0 && req->headers == NULL))
        return MMWS_EINVAL;
    for (size_t i = 0; i < req->subprotocol_count; i++) {
        const char *s = req->subprotocols[i];
        if (s == NULL) return MMWS_EINVAL;
        if (!is_token(s, strlen(s))) return MMWS_EHS_SUBPROTOCOL;
    }
    for (size_t i = 0; i < req->header_count; i++) {
        const mmws_header *h = &req->headers[i];
        if (h->name == NULL || h->value == NULL) return MMWS_EINVAL;
        size_t n = strlen(h->name);
        if (!is_token(h->name, n) || is_reserved_header(h->name, n))
            return MMWS_EHS_HEADER;
        for (const char *v = h->value; *v != '\0'; v++)
            if (!is_field_char((unsigned char)*v)) return MMWS_EHS_HEADER;
    }
    return 0;
}

/* Validates the whole request first, so an error never depends on cap,
 * then writes through a writer that stops at cap. */
int mmws_handshake_build(const mmws_handshake_request *req, char *buf,
                         size_t cap, size_t *out_len) {
    if (req == NULL || buf == NULL || out_len == NULL) return MMWS_EINVAL;
    int rc = check_request(req);
    if (rc != 0) return rc;

    const mmws_url *u = req->url;
    writer w = {buf, cap, 0, 0};
    puts_w(&w, "GET ");
    if (u->resource_len == 0 || u->resource[0] == '?') puts_w(&w, "/");
    if (u->resource_len > 0) put(&w, u->resource, u->resource_len);
    puts_w(&w, " HTTP/1.1\r\nHost: ");
    if (u->ipv6) puts_w(&w, "[");
    put(&w, u->host, u->host_len);
    if (u->ipv6) puts_w(&w, "]");
    if (u->port != (u->secure ? 443 : 80)) {
        puts_w(&w, ":");
        put_uint(&w, u->port);
    }
    puts_w(&w, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: ");
    put(&w, req->key, MMWS_HS_KEY_LEN);
    puts_w(&w, "\r\nSec-WebSocket-Version: 13\r\n");
    if (req->subprotocol_count > 0) {
        puts_w(&w, "Sec-WebSocket-Protocol: ");
        for (size_t i = 0; i < req->subprotocol_count; i++) {
            if (i > 0) puts_w(&w, ", ");
            puts_w(&w, req->subprotocols[i]);
        }
        puts_w(&w, "\r\n");
    }
    for (size_t i = 0; i < req->header_count; i++) {
        puts_w(&w, req->headers[i].name);
        puts_w(&w, ": ");
        puts_w(&w, req->headers[i].value);
        puts_w(&w, "\r\n");
    }
    puts_w(&w, "\r\n");
    if (w.full) return MMWS_ENOSPC;
    *out_len = w.len;
    return 0;
}

/* --------------------------------------------------------- response -- */

/* Writes a fixed sentence into p->detail. */
static void set_detail(mmws_handshake_parser *p, const char *msg) {
    size_t n = strlen(msg);
    if (n > sizeof p->detail - 1) n = sizeof p->detail - 1;
    memcpy(p->detail, msg, n);
    p->detail[n] = '\0';
}

/* Appends s[0..n) to p->detail at *at, replacing bytes that are not
 * printable ASCII with '?' and truncating to fit. */
static void add_detail(mmws_handshake_parser *p, size_t *at, const char *s,
                       size_t n) {
    for (size_t i = 0; i < n && *at < sizeof p->detail - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        p->detail[(*at)++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    p->detail[*at] = '\0';
}

/* Fails with code and a fixed detail sentence. */
static int fail(mmws_handshake_parser *p, int code, const char *msg) {
    set_detail(p, msg);
    return code;
}

/* Computes the expected accept once, so parsing never calls OpenSSL. */
int mmws_handshake_parser_init(mmws_handshake_parser *p, const char *key,
                               const char *const *subprotocols,
                               size_t subprotocol_count, size_t max_header) {
    if (p == NULL || key == NULL || !key_valid(key) ||
        (subprotocols == NULL && subprotocol_count > 0))
        return MMWS_EINVAL;
    memset(p, 0, sizeof *p);
    int rc = mmws_handshake_accept(key, MMWS_HS_KEY_LEN, p->accept);
    if (rc != 0) return rc;
    p->subprotocols = subprotocols;
    p->subprotocol_count = subprotocol_count;
    p->max_header = max_header ? max_header : MMWS_HS_DEFAULT_MAX_HEADER;
    p->protocol_index = -1;
    return 0;
}

/* What parse_fields() gathers from the header fields. */
typedef struct hs_fields {
    /* An Upgrade field listed the token "websocket". */
    int upgrade_ok;
    /* A Connection field listed the token "upgrade". */
    int connection_ok;
    /* Number of Sec-WebSocket-Accept fields. */
    int accept_count;
    /* The first one's value, OWS trimmed, pointing into the response. */
    const char *accept;
    /* Its length in bytes. */
    size_t accept_len;
    /* Number of Sec-WebSocket-Protocol fields. */
    int protocol_count;
    /* The first one's value, OWS trimmed, pointing into the response. */
    const char *protocol;
    /* Its length in bytes. */
    size_t protocol_len;
    /* A Sec-WebSocket-Extensions field had a non-empty value. */
    int extension;
    /* A Retry-After field held delta-seconds. */
    int retry_seen;
    /* That delay in seconds, capped at HS_MAX_RETRY_AFTER. */
    uint32_t retry_after;
} hs_fields;

/* Reads a Retry-After value into f if it is delta-seconds (1*DIGIT); an
 * HTTP-date or anything else is ignored. */
static void read_retry_after(hs_fields *f, const char *v, size_t n) {
    uint32_t s = 0;
    if (f->retry_seen || n == 0) return;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return;
        s = s * 10u + (uint32_t)(v[i] - '0');
        if (s > HS_MAX_RETRY_AFTER) s = HS_MAX_RETRY_AFTER;
    }
    f->retry_seen = 1;
    f->retry_after = s;
}

/*
 * Parses the status line of a complete header h (which ends in CRLF
 * CRLF). Sets p->status and *line_end (index of the line's CR), and
 * *reason / *reason_len. Returns 0 or MMWS_EHS_MALFORMED.
 */
static int parse_status_line(mmws_handshake_parser *p, const char *h,
                             size_t *line_end, const char **reason,
                             size_t *reason_len) {
    size_t e = 0;
    while (h[e] != '\r') e++; /* The header ends in CRLF, so this stops. */
    *line_end = e;
    if (h[e + 1] != '\n')
        return fail(p, MMWS_EHS_MALFORMED,
                    "status line contains a bare CR");
    if (e < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[7] < '0' || h[7] > '9' ||
        h[8] != ' ')
        return fail(p, MMWS_EHS_MALFORMED,
                    "status line does not start with \"HTTP/1.x \"");
    for (size_t i = 9; i < 12; i++)
        if (h[i] < '0' || h[i] > '9')
            return fail(p, MMWS_EHS_MALFORMED,
                        "status line has no three-digit status code");
    if (e > 12 && h[12] != ' ')
        return fail(p, MMWS_EHS_MALFORMED,
                    "status code is not followed by a space");
    for (size_t i = 12; i < e; i++)
        if (!is_field_char((unsigned char)h[i]))
            return fail(p, MMWS_EHS_MALFORMED,
                        "status line contains a control character");
    p->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    *reason = e > 12 ? h + 13 : h + e;
    *reason_len = e > 12 ? e - 13 : 0;
    return 0;
}

/*
 * Checks every header field line in h[start..end) (end is the index of
 * the blank line's CR) and gathers the fields the handshake depends on.
 * Returns 0 or MMWS_EHS_MALFORMED.
 */
static int parse_fields(mmws_handshake_parser *p, const char *h, size_t start,
                        size_t end, hs_fields *f) {
    size_t i = start;
    while (i < end) {
        size_t e = i;
        while (h[e] != '\r') e++;
        const char *line = h + i;
        size_t len = e - i;
        if (h[e + 1] != '\n')
            return fail(p, MMWS_EHS_MALFORMED,
                        "header line contains a bare CR");
        if (line[0] == ' ' || line[0] == '\t')
            return fail(p, MMWS_EHS_MALFORMED,
                        "header line starts with whitespace (obs-fold is "
                        "not accepted)");
        const char *colon = memchr(line, ':', len);
        if (colon == NULL)
            return fail(p, MMWS_EHS_MALFORMED, "header line has no colon");
        size_t name_len = (size_t)(colon - line);
        if (!is_token(line, name_len))
            return fail(p, MMWS_EHS_MALFORMED,
                        "header name is empty or not an HTTP token");
        for (size_t k = name_len + 1; k < len; k++)
            if (!is_field_char((unsigned char)line[k]))
                return fail(p, MMWS_EHS_MALFORMED,
                            "header value contains a control character");
        size_t vlen = len - name_len - 1;
        const char *v = trim_ows(colon + 1, &vlen);

        if (eq_ci(line, name_len, "Upgrade")) {
            f->upgrade_ok |= list_has_token(v, vlen, "websocket");
        } else if (eq_ci(line, name_len, "Connection")) {
            f->connection_ok |= list_has_token(v, vlen, "upgrade");
        } else if (eq_ci(line, name_len, "Sec-WebSocket-Accept")) {
            if (f->accept_count++ == 0) {
                f->accept = v;
                f->accept_len = vlen;
            }
        } else if (eq_ci(line, name_len, "Sec-WebSocket-Protocol")) {
            if (f->protocol_count++ == 0) {
                f->protocol = v;
                f->protocol_len = vlen;
            }
        } else if (eq_ci(line, name_len, "Sec-WebSocket-Extensions")) {
            f->extension |= vlen > 0;
        } else if (eq_ci(line, name_len, "Retry-After")) {
            read_retry_after(f, v, vlen);
        }
        i = e + 2;
    }
    return 0;
}

/*
 * Judges the complete header h[0..n): syntax, status, then the RFC 6455
 * 4.2.2 checks in a fixed order. Returns 0 or an MMWS_EHS_* code.
 */
static int check_response(mmws_handshake_parser *p, const char *h, size_t n) {
    size_t line_end, reason_len;
    const char *reason;
    hs_fields f;
    memset(&f, 0, sizeof f);
    int rc = parse_status_line(p, h, &line_end, &reason, &reason_len);
    if (rc != 0) return rc;
    rc = parse_fields(p, h, line_end + 2, n - 2, &f);
    if (rc != 0) return rc;

    if (p->status != 101) {
        char code[4] = {h[9], h[10], h[11], '\0'};
        size_t at = 0;
        add_detail(p, &at, "server answered ", 16);
        add_detail(p, &at, code, 3);
        if (reason_len > 0) {
            add_detail(p, &at, " ", 1);
            add_detail(p, &at, reason, reason_len);
        }
        p->retry_after_s = f.retry_after;
        return MMWS_EHS_STATUS;
    }
    if (!f.upgrade_ok)
        return fail(p, MMWS_EHS_UPGRADE,
                    "Upgrade header is missing or does not list "
                    "\"websocket\"");
    if (!f.connection_ok)
        return fail(p, MMWS_EHS_CONNECTION,
                    "Connection header is missing or does not list "
                    "\"upgrade\"");
    if (f.accept_count == 0)
        return fail(p, MMWS_EHS_ACCEPT, "Sec-WebSocket-Accept is missing");
    if (f.accept_count > 1)
        return fail(p, MMWS_EHS_ACCEPT, "Sec-WebSocket-Accept is repeated");
    if (f.accept_len != MMWS_HS_ACCEPT_LEN ||
        memcmp(f.accept, p->accept, MMWS_HS_ACCEPT_LEN) != 0)
        return fail(p, MMWS_EHS_ACCEPT,
                    "Sec-WebSocket-Accept does not match the key");
    if (f.extension)
        return fail(p, MMWS_EHS_EXTENSION,
                    "server selected a Sec-WebSocket-Extensions value but "
                    "none was offered");
    if (f.protocol_count > 1)
        return fail(p, MMWS_EHS_PROTOCOL, "Sec-WebSocket-Protocol is repeated");
    if (f.protocol_count == 1) {
        if (p->subprotocol_count == 0)
            return fail(p, MMWS_EHS_PROTOCOL,
                        "server selected a subprotocol but none was offered");
        for (size_t i = 0; i < p->subprotocol_count; i++) {
            const char *s = p->subprotocols[i];
            if (s != NULL && strlen(s) == f.protocol_len &&
                memcmp(s, f.protocol, f.protocol_len) == 0) {
                p->protocol_index = (int)i;
                return 0;
            }
        }
        return fail(p, MMWS_EHS_PROTOCOL,
                    "server selected a subprotocol that was not offered");
    }
    return 0;
}

/* Scans only new bytes for the end of the header; judges the header
 * only once it is complete, so every split reaches the same verdict. */
int mmws_handshake_parse(mmws_handshake_parser *p, const char *buf,
                         size_t len) {
    if (p == NULL || (buf == NULL && len > 0)) return MMWS_EINVAL;
    if (len == 0) return MMWS_EINCOMPLETE;

    /* Fail fast on anything that cannot become "HTTP/1.". */
    size_t pre = len < 7 ? len : 7;
    if (memcmp(buf, "HTTP/1.", pre) != 0)
        return fail(p, MMWS_EHS_MALFORMED,
                    "response does not start with \"HTTP/1.\"");

    /*
     * Look for the CRLF CRLF that ends the header, never past max_header.
     * Only CRLF line endings are accepted (RFC 9112 2.2 allows a bare LF,
     * but no WebSocket server sends one and accepting it widens what a
     * smuggling proxy can exploit), so every LF is checked for its CR.
     * The search restarts 3 bytes before where the last call stopped, so a
     * terminator split across calls (or already found) is seen again.
     */
    size_t limit = len < p->max_header ? len : p->max_header;
    size_t i = p->scanned <= limit ? p->scanned : 0;
    i = i >= 3 ? i - 3 : 0;
    size_t end = 0;
    for (; i < limit; i++) {
        if (buf[i] != '\n') continue;
        if (i == 0 || buf[i - 1] != '\r')
            return fail(p, MMWS_EHS_MALFORMED,
                        "header line ends in a bare LF (CRLF is required)");
        if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = i + 1;
            break;
        }
    }
    if (end == 0) {
        p->scanned = limit;
        if (len >= p->max_header)
            return fail(p, MMWS_EHS_TOOBIG,
                        "response header is larger than the maximum size");
        return MMWS_EINCOMPLETE;
    }

    p->scanned = end;
    p->header_len = end;
    p->status = 0;
    p->retry_after_s = 0;
    p->protocol_index = -1;
    p->detail[0] = '\0';
    return check_response(p, buf, end);
}
