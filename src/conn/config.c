/*
 * config.c — mmws_conn_config: defaults, validation with sentences that
 * name the field and the value, and the connection's owned copy.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_internal.h"

/* Bounds on the config's sizes; documented in conn.h and docs/conn.md. */
#define CFG_MAX_FRAME (1ull << 30)            /* 1 GiB */
#define CFG_MIN_READ_BUF 4096u
#define CFG_MAX_READ_BUF (256u << 20)
#define CFG_MIN_SEND_QUEUE 1024u
#define CFG_MAX_HANDSHAKE (1u << 20)
#define CFG_MAX_ON_CONNECT 4096u
#define CFG_MAX_TIMEOUT_MS (24u * 3600u * 1000u)

void mmws_conn_config_default(mmws_conn_config *cfg, const char *wss_url) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->wss_url = wss_url;
    cfg->auto_reconnect = 1;
    cfg->max_frame_size = 1u << 20;
    cfg->latency_ping_interval_ms = 1000;
    cfg->pong_timeout_ms = 5000;
    cfg->idle_timeout_ms = 30000;
    cfg->connect_timeout_ms = 10000;
    cfg->handshake_timeout_ms = 10000;
    cfg->close_timeout_ms = 2000;
    cfg->backoff_base_ms = 250;
    cfg->backoff_cap_ms = 30000;
    cfg->backoff_reset_ms = 60000;
    cfg->validate_utf8 = 1;
    cfg->read_buffer_size = 256u << 10;
    cfg->max_send_queue = 4u << 20;
    cfg->max_handshake_size = MMWS_HS_DEFAULT_MAX_HEADER;
    cfg->tls_verify = 1;
}

/* Writes a sentence into err and returns rc. */
__attribute__((format(printf, 4, 5))) static int
cfg_fail(char *err, size_t err_len, int rc, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The URL as it may be quoted in an error: at most 80 bytes. */
static const char *url_quote(const char *url, char *buf, size_t len) {
    snprintf(buf, len, "%.80s%s", url, strlen(url) > 80 ? "..." : "");
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
    return buf;
}

int mmws__parse_resolve(const char *list, uint16_t port, mmws__addrs *addrs) {
    memset(addrs, 0, sizeof *addrs);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char tmp[64];
        if (n == 0 || n >= sizeof tmp || addrs->count == MMWS__DNS_MAX_ADDRS)
            return MMWS_ECONFIG;
        memcpy(tmp, p, n);
        tmp[n] = '\0';
        char *a = tmp;
        if (a[0] == '[' && n > 2 && a[n - 1] == ']') {
            a[n - 1] = '\0';
            a++;
        }
        struct sockaddr_storage *ss = &addrs->addr[addrs->count];
        struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET, a, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(port);
            addrs->len[addrs->count] = sizeof *v4;
        } else if (inet_pton(AF_INET6, a, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(port);
            addrs->len[addrs->count] = sizeof *v6;
        } else {
            return MMWS_ECONFIG;
        }
        addrs->count++;
        p = end ? end + 1 : p + n;
    }
    return addrs->count ? 0 : MMWS_ECONFIG;
}

/* Checks one timeout field: 1..CFG_MAX_TIMEOUT_MS (0 allowed if zero_ok). */
static int check_ms(const char *name, uint32_t v, int zero_ok, char *err,
                    size_t err_len) {
    if ((v == 0 && !zero_ok) || v > CFG_MAX_TIMEOUT_MS)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "%s must be %s..%u ms (got %u)", name,
                        zero_ok ? "0" : "1", CFG_MAX_TIMEOUT_MS, v);
    return 0;
}

size_t mmws__conn_request_cap(const mmws_conn_config *cfg) {
    size_t need = 1024 + strlen(cfg->wss_url);
    for (size_t i = 0; i < cfg->header_count; i++)
        need += strlen(cfg->headers[i].name) + strlen(cfg->headers[i].value) + 4;
    for (size_t i = 0; i < cfg->subprotocol_count; i++)
        need += strlen(cfg->subprotocols[i]) + 2;
    return need;
}

int mmws__conn_cfg_check(const mmws_conn_config *cfg, char *err,
                         size_t err_len) {
    char q[96];
    if (!cfg) return cfg_fail(err, err_len, MMWS_EINVAL, "config is NULL");
    if (!cfg->wss_url)
        return cfg_fail(err, err_len, MMWS_ECONFIG, "wss_url is NULL");
    mmws_url url;
    int rc = mmws_url_parse(cfg->wss_url, strlen(cfg->wss_url),
                            cfg->allow_plaintext ? MMWS_URL_ALLOW_PLAINTEXT
                                                 : 0,
                            0, &url);
    if (rc == MMWS_EURL_SCHEME)
        return cfg_fail(err, err_len, rc,
                        "wss_url must start with wss:// (got \"%s\")",
                        url_quote(cfg->wss_url, q, sizeof q));
    if (rc == MMWS_EURL_PLAINTEXT)
        return cfg_fail(err, err_len, rc,
                        "wss_url is ws:// (plaintext) but allow_plaintext is "
                        "not set (got \"%s\")",
                        url_quote(cfg->wss_url, q, sizeof q));
    if (rc)
        return cfg_fail(err, err_len, rc, "wss_url is invalid: %s (got \"%s\")",
                        mmws_strerror(rc),
                        url_quote(cfg->wss_url, q, sizeof q));
    if (url.host_len >= 256)
        return cfg_fail(err, err_len, MMWS_ECONFIG, "wss_url host too long");
    if (cfg->max_frame_size == 0 || cfg->max_frame_size > CFG_MAX_FRAME)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "max_frame_size must be 1..%llu bytes (got %zu)",
                        (unsigned long long)CFG_MAX_FRAME,
                        cfg->max_frame_size);
    if (cfg->read_buffer_size < CFG_MIN_READ_BUF ||
        cfg->read_buffer_size > CFG_MAX_READ_BUF)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "read_buffer_size must be %u..%u bytes (got %zu)",
                        CFG_MIN_READ_BUF, CFG_MAX_READ_BUF,
                        cfg->read_buffer_size);
    if (cfg->max_send_queue < CFG_MIN_SEND_QUEUE)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "max_send_queue must be at least %u bytes (got %zu)",
                        CFG_MIN_SEND_QUEUE, cfg->max_send_queue);
    if (cfg->max_handshake_size < 256 ||
        cfg->max_handshake_size > CFG_MAX_HANDSHAKE)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "max_handshake_size must be 256..%u bytes (got %zu)",
                        CFG_MAX_HANDSHAKE, cfg->max_handshake_size);
    if ((rc = check_ms("latency_ping_interval_ms",
                       cfg->latency_ping_interval_ms, 1, err, err_len)) ||
        (rc = check_ms("pong_timeout_ms", cfg->pong_timeout_ms,
                       cfg->latency_ping_interval_ms == 0, err, err_len)) ||
        (rc = check_ms("idle_timeout_ms", cfg->idle_timeout_ms, 1, err,
                       err_len)) ||
        (rc = check_ms("connect_timeout_ms", cfg->connect_timeout_ms, 0, err,
                       err_len)) ||
        (rc = check_ms("handshake_timeout_ms", cfg->handshake_timeout_ms, 0,
                       err, err_len)) ||
        (rc = check_ms("close_timeout_ms", cfg->close_timeout_ms, 0, err,
                       err_len)) ||
        (rc = check_ms("backoff_base_ms", cfg->backoff_base_ms, 0, err,
                       err_len)) ||
        (rc = check_ms("backoff_cap_ms", cfg->backoff_cap_ms, 0, err,
                       err_len)) ||
        (rc = check_ms("backoff_reset_ms", cfg->backoff_reset_ms, 1, err,
                       err_len)) ||
        (rc = check_ms("app_ping_interval_ms", cfg->app_ping_interval_ms, 1,
                       err, err_len)))
        return rc;
    if (cfg->backoff_cap_ms < cfg->backoff_base_ms)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "backoff_cap_ms (%u) must be >= backoff_base_ms (%u)",
                        cfg->backoff_cap_ms, cfg->backoff_base_ms);
    if (cfg->on_connect_count > CFG_MAX_ON_CONNECT ||
        (cfg->on_connect_count && !cfg->on_connect))
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "on_connect must hold on_connect_count (%zu, max %u) "
                        "strings",
                        cfg->on_connect_count, CFG_MAX_ON_CONNECT);
    for (size_t i = 0; i < cfg->on_connect_count; i++) {
        if (!cfg->on_connect[i])
            return cfg_fail(err, err_len, MMWS_ECONFIG,
                            "on_connect[%zu] is NULL", i);
        if (strlen(cfg->on_connect[i]) > cfg->max_frame_size)
            return cfg_fail(err, err_len, MMWS_ECONFIG,
                            "on_connect[%zu] is longer than max_frame_size",
                            i);
        if (mmws_utf8_check((const uint8_t *)cfg->on_connect[i],
                            strlen(cfg->on_connect[i])))
            return cfg_fail(err, err_len, MMWS_ECONFIG,
                            "on_connect[%zu] is not valid UTF-8 (sent as "
                            "TEXT)", i);
    }
    if (cfg->app_ping_interval_ms && !cfg->app_ping_payload)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "app_ping_interval_ms is %u but app_ping_payload is "
                        "NULL", cfg->app_ping_interval_ms);
    if (cfg->app_ping_payload &&
        mmws_utf8_check((const uint8_t *)cfg->app_ping_payload,
                        strlen(cfg->app_ping_payload)))
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "app_ping_payload is not valid UTF-8");
    if ((cfg->header_count && !cfg->headers) ||
        (cfg->subprotocol_count && !cfg->subprotocols))
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "headers/subprotocols is NULL but its count is not 0");
    for (size_t i = 0; i < cfg->header_count; i++)
        if (!cfg->headers[i].name || !cfg->headers[i].value)
            return cfg_fail(err, err_len, MMWS_ECONFIG,
                            "headers[%zu] has a NULL name or value", i);
    for (size_t i = 0; i < cfg->subprotocol_count; i++)
        if (!cfg->subprotocols[i])
            return cfg_fail(err, err_len, MMWS_ECONFIG,
                            "subprotocols[%zu] is NULL", i);
    /* A dry run of the request catches bad header names and values. */
    char key[MMWS_HS_KEY_LEN + 1] = "AAAAAAAAAAAAAAAAAAAAAA==";
    mmws_handshake_request req = {&url, key, cfg->subprotocols,
                                  cfg->subprotocol_count, cfg->headers,
                                  cfg->header_count};
    size_t need = mmws__conn_request_cap(cfg);
    char *buf = malloc(need);
    if (!buf)
        return cfg_fail(err, err_len, MMWS_ENOMEM,
                        "out of memory for a %zu-byte trial upgrade request",
                        need);
    size_t out_len;
    rc = mmws_handshake_build(&req, buf, need, &out_len);
    free(buf);
    if (rc == MMWS_EHS_HEADER)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "headers: a name is not an HTTP token, a value holds "
                        "CR/LF/NUL/control bytes, or the header is one the "
                        "handshake sets itself");
    if (rc == MMWS_EHS_SUBPROTOCOL)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "subprotocols: each must be a non-empty HTTP token");
    if (rc)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "the upgrade request cannot be built: %s",
                        mmws_strerror(rc));
    if (cfg->resolve) {
        mmws__addrs a;
        if (mmws__parse_resolve(cfg->resolve, url.port, &a))
            return cfg_fail(err, err_len, MMWS_ECONFIG,
                            "resolve must be IP addresses separated by commas "
                            "(at most %d; got \"%.80s\")",
                            MMWS__DNS_MAX_ADDRS, cfg->resolve);
    }
    if (cfg->tls_key_file && !cfg->tls_cert_file)
        return cfg_fail(err, err_len, MMWS_ECONFIG,
                        "tls_key_file is set but tls_cert_file is not");
    return 0;
}

int mmws_conn_config_validate(const mmws_conn_config *cfg, char *err,
                              size_t err_len) {
    return mmws__conn_cfg_check(cfg, err, err_len);
}

/* Bytes a string needs in the block (0 for NULL). */
static size_t str_need(const char *s) { return s ? strlen(s) + 1 : 0; }

/* Copies s into *cursor and advances it; NULL stays NULL. */
static const char *str_put(char **cursor, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = *cursor;
    memcpy(d, s, n);
    *cursor += n;
    return d;
}

int mmws__conn_cfg_set_on_connect(mmws__conn_cfg *out,
                                  const char *const *msgs, size_t count) {
    size_t need = count * sizeof(char *);
    for (size_t i = 0; i < count; i++) need += str_need(msgs[i]);
    char *block = malloc(need ? need : 1);
    if (!block) return MMWS_ENOMEM;
    const char **arr = (const char **)(void *)block;
    char *cursor = block + count * sizeof(char *);
    for (size_t i = 0; i < count; i++) arr[i] = str_put(&cursor, msgs[i]);
    free((void *)out->on_connect);
    out->on_connect = arr;
    out->pub.on_connect = arr;
    out->pub.on_connect_count = count;
    return 0;
}

int mmws__conn_cfg_copy(mmws__conn_cfg *out, const mmws_conn_config *cfg) {
    memset(out, 0, sizeof *out);
    out->pub = *cfg;
    const char *singles[] = {cfg->wss_url,          cfg->app_ping_payload,
                             cfg->app_pong_payload, cfg->tls_ca_file,
                             cfg->tls_ca_dir,       cfg->tls_cert_file,
                             cfg->tls_key_file,     cfg->dns_servers,
                             cfg->resolve};
    size_t need = 0;
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        need += str_need(singles[i]);
    for (size_t i = 0; i < cfg->header_count; i++)
        need += str_need(cfg->headers[i].name) +
                str_need(cfg->headers[i].value);
    for (size_t i = 0; i < cfg->subprotocol_count; i++)
        need += str_need(cfg->subprotocols[i]);
    out->strings = malloc(need);
    out->headers = calloc(cfg->header_count + 1, sizeof *out->headers);
    out->subprotocols =
        calloc(cfg->subprotocol_count + 1, sizeof *out->subprotocols);
    if (!out->strings || !out->headers || !out->subprotocols ||
        mmws__conn_cfg_set_on_connect(out, cfg->on_connect,
                                      cfg->on_connect_count)) {
        mmws__conn_cfg_free(out);
        return MMWS_ENOMEM;
    }
    char *cur = out->strings;
    out->pub.wss_url = str_put(&cur, cfg->wss_url);
    out->pub.app_ping_payload = str_put(&cur, cfg->app_ping_payload);
    out->pub.app_pong_payload = str_put(&cur, cfg->app_pong_payload);
    out->pub.tls_ca_file = str_put(&cur, cfg->tls_ca_file);
    out->pub.tls_ca_dir = str_put(&cur, cfg->tls_ca_dir);
    out->pub.tls_cert_file = str_put(&cur, cfg->tls_cert_file);
    out->pub.tls_key_file = str_put(&cur, cfg->tls_key_file);
    out->pub.dns_servers = str_put(&cur, cfg->dns_servers);
    out->pub.resolve = str_put(&cur, cfg->resolve);
    for (size_t i = 0; i < cfg->header_count; i++) {
        out->headers[i].name = str_put(&cur, cfg->headers[i].name);
        out->headers[i].value = str_put(&cur, cfg->headers[i].value);
    }
    for (size_t i = 0; i < cfg->subprotocol_count; i++)
        out->subprotocols[i] = str_put(&cur, cfg->subprotocols[i]);
    out->pub.headers = out->headers;
    out->pub.subprotocols = out->subprotocols;
    out->app_pong_len = cfg->app_pong_payload ? strlen(cfg->app_pong_payload)
                                              : 0;
    out->request_cap = mmws__conn_request_cap(cfg);
    mmws_url_parse(out->pub.wss_url, strlen(out->pub.wss_url),
                   cfg->allow_plaintext ? MMWS_URL_ALLOW_PLAINTEXT : 0, 0,
                   &out->url);
    memcpy(out->host, out->url.host, out->url.host_len);
    out->host[out->url.host_len] = '\0';
    return 0;
}

void mmws__conn_cfg_free(mmws__conn_cfg *c) {
    free(c->strings);
    free(c->headers);
    free(c->subprotocols);
    free((void *)c->on_connect);
    memset(c, 0, sizeof *c);
}
