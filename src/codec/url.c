/*
 * url.c — parsing of ws:// and wss:// URLs (RFC 6455 3).
 *
 * The parser accepts the subset a client needs: scheme, host (a registered
 * name or a bracketed IPv6 literal), optional port, and the resource (path
 * and query). It rejects everything the request could not carry safely:
 * user information, fragments, spaces, control and non-ASCII bytes.
 */
#include <string.h>

#include <mmws/codec.h>

/* Longest registered name DNS can resolve (RFC 1035 2.3.4, as text). */
#define URL_MAX_HOST 253
/* Bounds on the text between the brackets of an IPv6 literal. */
#define URL_MIN_IPV6 2
#define URL_MAX_IPV6 45

/* Lower-cases an ASCII letter; other bytes are returned unchanged. */
static unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* 1 if s[0..n) equals the lower-case ASCII string lit, ignoring case. */
static int prefix_ci(const char *s, size_t n, const char *lit) {
    size_t ln = strlen(lit);
    if (n < ln) return 0;
    for (size_t i = 0; i < ln; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)lit[i]) return 0;
    return 1;
}

/* 1 if c may appear in a registered-name host: ALPHA DIGIT - . _ ~ . */
static int is_host_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* 1 if c may appear inside the brackets of an IPv6 literal. */
static int is_ipv6_char(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/*
 * Parses the port text p[0..n) (the bytes after ':'): 1 to 5 decimal
 * digits with a value in 1..65535. Returns 0 and sets *port, or
 * MMWS_EURL_PORT.
 */
static int parse_port(const char *p, size_t n, uint16_t *port) {
    if (n == 0 || n > 5) return MMWS_EURL_PORT;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < '0' || c > '9') return MMWS_EURL_PORT;
        v = v * 10u + (uint32_t)(c - '0');
    }
    if (v == 0 || v > 65535u) return MMWS_EURL_PORT;
    *port = (uint16_t)v;
    return 0;
}

/*
 * Splits the authority a[0..n) into host and port, filling the host, ipv6,
 * port and port_explicit fields of *u. Returns 0, MMWS_EURL_HOST or
 * MMWS_EURL_PORT.
 */
static int parse_authority(const char *a, size_t n, mmws_url *u) {
    const char *port_text = NULL;
    size_t port_len = 0;
    if (n == 0) return MMWS_EURL_HOST;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL) return MMWS_EURL_HOST;
        size_t inner = (size_t)(close - a) - 1;
        if (inner < URL_MIN_IPV6 || inner > URL_MAX_IPV6) return MMWS_EURL_HOST;
        size_t colons = 0;
        for (size_t i = 1; i <= inner; i++) {
            if (!is_ipv6_char((unsigned char)a[i])) return MMWS_EURL_HOST;
            colons += a[i] == ':';
        }
        /* Every IPv6 address, "::" included, is written with two colons. */
        if (colons < 2) return MMWS_EURL_HOST;
        size_t rest = n - inner - 2;
        if (rest > 0) {
            if (close[1] != ':') return MMWS_EURL_HOST;
            port_text = close + 2;
            port_len = rest - 1;
        }
        u->host = a + 1;
        u->host_len = inner;
        u->ipv6 = 1;
    } else {
        const char *colon = memchr(a, ':', n);
        size_t host_len = colon ? (size_t)(colon - a) : n;
        if (host_len == 0 || host_len > URL_MAX_HOST) return MMWS_EURL_HOST;
        for (size_t i = 0; i < host_len; i++)
            if (!is_host_char((unsigned char)a[i])) return MMWS_EURL_HOST;
        if (colon != NULL) {
            port_text = colon + 1;
            port_len = n - host_len - 1;
        }
        u->host = a;
        u->host_len = host_len;
        u->ipv6 = 0;
    }
    if (port_text != NULL) {
        int rc = parse_port(port_text, port_len, &u->port);
        if (rc != 0) return rc;
        u->port_explicit = 1;
    }
    return 0;
}

/* Checks run in the documented order (length, characters, scheme,
 * fragment, userinfo, host, port) so the code names the first problem. */
int mmws_url_parse(const char *url, size_t len, unsigned flags,
                   size_t max_len, mmws_url *out) {
    if (url == NULL || out == NULL) return MMWS_EINVAL;
    if (len > (max_len ? max_len : MMWS_URL_DEFAULT_MAX_LEN))
        return MMWS_EURL_TOOLONG;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7F) return MMWS_EURL_CHAR;
    }

    mmws_url u;
    memset(&u, 0, sizeof u);
    size_t pos;
    if (prefix_ci(url, len, "wss://")) {
        u.secure = 1;
        u.port = 443;
        pos = 6;
    } else if (prefix_ci(url, len, "ws://")) {
        if (!(flags & MMWS_URL_ALLOW_PLAINTEXT)) return MMWS_EURL_PLAINTEXT;
        u.port = 80;
        pos = 5;
    } else {
        return MMWS_EURL_SCHEME;
    }
    if (memchr(url, '#', len) != NULL) return MMWS_EURL_FRAGMENT;

    size_t end = pos;
    while (end < len && url[end] != '/' && url[end] != '?') end++;
    if (memchr(url + pos, '@', end - pos) != NULL) return MMWS_EURL_USERINFO;
    int rc = parse_authority(url + pos, end - pos, &u);
    if (rc != 0) return rc;

    u.resource = url + end;
    u.resource_len = len - end;
    *out = u;
    return 0;
}
