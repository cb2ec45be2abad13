/*
 * test_handshake.c — key, accept, request bytes and the response checker:
 * RFC 6455 1.3 vectors, every error path, every split of every response,
 * ENOSPC at every capacity, and inputs ending against a guard page.
 */
#include "test.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* 1 if s[0..n) is base64 text. */
static int is_base64(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------ key, accept -- */

static void test_accept_rfc(void) {
    char acc[MMWS_HS_ACCEPT_LEN + 1];
    CHECK_RC(mmws_handshake_accept(RFC_KEY, strlen(RFC_KEY), acc), 0);
    CHECK_STR(acc, RFC_ACCEPT);
    /* Only key_len bytes are hashed. */
    CHECK_RC(mmws_handshake_accept(RFC_KEY "junk", strlen(RFC_KEY), acc), 0);
    CHECK_STR(acc, RFC_ACCEPT);
    CHECK_RC(mmws_handshake_accept(NULL, 24, acc), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_accept(RFC_KEY, 24, NULL), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_accept(RFC_KEY, 0, acc), MMWS_EINVAL);
    static char big[4096];
    memset(big, 'A', sizeof big);
    CHECK_RC(mmws_handshake_accept(big, sizeof big, acc), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_accept(big, 128, acc), 0);
    CHECK_EQ(strlen(acc), MMWS_HS_ACCEPT_LEN);
}

static void test_key(void) {
    char a[MMWS_HS_KEY_LEN + 1], b[MMWS_HS_KEY_LEN + 1];
    memset(a, 'x', sizeof a);
    memset(b, 'x', sizeof b);
    CHECK_RC(mmws_handshake_key(a), 0);
    CHECK_RC(mmws_handshake_key(b), 0);
    CHECK_EQ(strlen(a), MMWS_HS_KEY_LEN);
    CHECK_EQ(strlen(b), MMWS_HS_KEY_LEN);
    CHECK(is_base64(a, MMWS_HS_KEY_LEN));
    CHECK(a[22] == '=' && a[23] == '=');
    CHECK(strcmp(a, b) != 0);
    CHECK_RC(mmws_handshake_key(NULL), MMWS_EINVAL);
    /* A generated key is accepted by the request builder and the parser. */
    mmws_handshake_parser p;
    CHECK_RC(mmws_handshake_parser_init(&p, a, NULL, 0, 0), 0);
}

static void test_random_bytes(void) {
    static unsigned char big[100000];
    CHECK_RC(mmws_random_bytes(big, 0), 0);
    CHECK_RC(mmws_random_bytes(NULL, 0), 0);
    CHECK_RC(mmws_random_bytes(NULL, 1), MMWS_EINVAL);
    CHECK_RC(mmws_random_bytes(big, sizeof big), 0);
    size_t zeros = 0;
    for (size_t i = 0; i < sizeof big; i++) zeros += big[i] == 0;
    CHECK(zeros < sizeof big / 64); /* ~390 expected; all-zero means unfilled */
}

/* ---------------------------------------------------------- request -- */

static const char *const protos2[] = {"chat", "superchat"};
static const char *const protos1[] = {"v2.json"};
static const mmws_header hdrs2[] = {{"Origin", "https://example.com"},
                                    {"X-Token", "a\tb c \xc3\xa9"}};
static const mmws_header hdr_empty[] = {{"X-Empty", ""}};

/* One request: URL, offered subprotocols and headers, and the bytes. */
typedef struct build_case {
    const char *url;
    const char *const *protos;
    size_t nprotos;
    const mmws_header *hdrs;
    size_t nhdrs;
    const char *want;
} build_case;

#define REQ_TAIL                                                     \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                  \
    "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n"

static const build_case build_cases[] = {
    {"wss://example.com", NULL, 0, NULL, 0,
     "GET / HTTP/1.1\r\nHost: example.com\r\n" REQ_TAIL "\r\n"},
    {"wss://example.com:443/chat", NULL, 0, NULL, 0,
     "GET /chat HTTP/1.1\r\nHost: example.com\r\n" REQ_TAIL "\r\n"},
    {"wss://example.com:8443/a/b?x=1&y", NULL, 0, NULL, 0,
     "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8443\r\n" REQ_TAIL "\r\n"},
    {"wss://h:80/", NULL, 0, NULL, 0,
     "GET / HTTP/1.1\r\nHost: h:80\r\n" REQ_TAIL "\r\n"},
    {"ws://localhost:80/", NULL, 0, NULL, 0,
     "GET / HTTP/1.1\r\nHost: localhost\r\n" REQ_TAIL "\r\n"},
    {"ws://localhost:443/", NULL, 0, NULL, 0,
     "GET / HTTP/1.1\r\nHost: localhost:443\r\n" REQ_TAIL "\r\n"},
    {"wss://[::1]/", NULL, 0, NULL, 0,
     "GET / HTTP/1.1\r\nHost: [::1]\r\n" REQ_TAIL "\r\n"},
    {"wss://[2001:db8::1]:9443/x", NULL, 0, NULL, 0,
     "GET /x HTTP/1.1\r\nHost: [2001:db8::1]:9443\r\n" REQ_TAIL "\r\n"},
    {"wss://h?stream=btcusdt", NULL, 0, NULL, 0,
     "GET /?stream=btcusdt HTTP/1.1\r\nHost: h\r\n" REQ_TAIL "\r\n"},
    {"wss://h:65535?", NULL, 0, NULL, 0,
     "GET /? HTTP/1.1\r\nHost: h:65535\r\n" REQ_TAIL "\r\n"},
    {"wss://server.example.com/chat", protos2, 2, NULL, 0,
     "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n" REQ_TAIL
     "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"},
    {"wss://h/", protos1, 1, hdrs2, 2,
     "GET / HTTP/1.1\r\nHost: h\r\n" REQ_TAIL
     "Sec-WebSocket-Protocol: v2.json\r\n"
     "Origin: https://example.com\r\nX-Token: a\tb c \xc3\xa9\r\n\r\n"},
    {"wss://h/", NULL, 0, hdr_empty, 1,
     "GET / HTTP/1.1\r\nHost: h\r\n" REQ_TAIL "X-Empty: \r\n\r\n"},
};
#define N_BUILD (sizeof build_cases / sizeof build_cases[0])

/* Parses c->url (plaintext allowed) and fills req around it. */
static void make_request(const build_case *c, mmws_url *u,
                         mmws_handshake_request *req) {
    CHECK_RC(mmws_url_parse(c->url, strlen(c->url), MMWS_URL_ALLOW_PLAINTEXT,
                            0, u),
             0);
    memset(req, 0, sizeof *req);
    req->url = u;
    req->key = RFC_KEY;
    req->subprotocols = c->protos;
    req->subprotocol_count = c->nprotos;
    req->headers = c->hdrs;
    req->header_count = c->nhdrs;
}

static void test_build_exact(void) {
    for (size_t i = 0; i < N_BUILD; i++) {
        const build_case *c = &build_cases[i];
        mmws_url u;
        mmws_handshake_request req;
        char buf[1024];
        size_t n = 0;
        t_case = c->url;
        make_request(c, &u, &req);
        CHECK_RC(mmws_handshake_build(&req, buf, sizeof buf, &n), 0);
        CHECK_MEM(buf, n, c->want, strlen(c->want));
    }
}

/* At every capacity below the needed size: ENOSPC, nothing past cap. */
static void test_build_enospc(void) {
    for (size_t i = 0; i < N_BUILD; i++) {
        const build_case *c = &build_cases[i];
        mmws_url u;
        mmws_handshake_request req;
        size_t need = strlen(c->want);
        char buf[1024];
        t_case = c->url;
        make_request(c, &u, &req);
        unsigned overwritten = 0, wrong_rc = 0, len_touched = 0;
        for (size_t cap = 0; cap < need; cap++) {
            memset(buf, 0xCC, sizeof buf);
            size_t n = 12345;
            if (mmws_handshake_build(&req, buf, cap, &n) != MMWS_ENOSPC)
                wrong_rc++;
            len_touched += n != 12345;
            for (size_t k = cap; k < sizeof buf; k++)
                overwritten += (unsigned char)buf[k] != 0xCC;
        }
        CHECK_EQ(wrong_rc, 0);
        CHECK_EQ(overwritten, 0);
        CHECK_EQ(len_touched, 0);
        memset(buf, 0xCC, sizeof buf);
        size_t n = 0;
        CHECK_RC(mmws_handshake_build(&req, buf, need, &n), 0);
        CHECK_EQ(n, need);
        CHECK((unsigned char)buf[need] == 0xCC);
    }
}

/* One invalid request and the code it must be refused with. */
typedef struct build_bad {
    const char *what;
    const char *key;
    const char *const *protos;
    size_t nprotos;
    const char *hname, *hvalue;
    int rc;
} build_bad;

static const char *const p_empty[] = {""};
static const char *const p_space[] = {"chat", "a b"};
static const char *const p_comma[] = {"a,b"};
static const char *const p_crlf[] = {"chat\r\nX: y"};
static const char *const p_slash[] = {"v1/json"};
static const char *const p_null[] = {NULL};

static const build_bad build_bads[] = {
    {"short key", "dGhlIHNhbXBsZSBub25jZQ=", NULL, 0, NULL, NULL, MMWS_EINVAL},
    {"long key", RFC_KEY "A", NULL, 0, NULL, NULL, MMWS_EINVAL},
    {"empty key", "", NULL, 0, NULL, NULL, MMWS_EINVAL},
    {"key without padding", "dGhlIHNhbXBsZSBub25jZQAA", NULL, 0, NULL, NULL,
     MMWS_EINVAL},
    {"key with space", "dGhlIHNhbXBsZSBub25j ZQ==", NULL, 0, NULL, NULL,
     MMWS_EINVAL},
    {"key with CRLF", "dGhlIHNhbXBsZSBub25\r\nQ==", NULL, 0, NULL, NULL,
     MMWS_EINVAL},
    {"NULL key", NULL, NULL, 0, NULL, NULL, MMWS_EINVAL},
    {"protocols NULL with count", RFC_KEY, NULL, 1, NULL, NULL, MMWS_EINVAL},
    {"NULL protocol", RFC_KEY, p_null, 1, NULL, NULL, MMWS_EINVAL},
    {"empty protocol", RFC_KEY, p_empty, 1, NULL, NULL, MMWS_EHS_SUBPROTOCOL},
    {"protocol with space", RFC_KEY, p_space, 2, NULL, NULL,
     MMWS_EHS_SUBPROTOCOL},
    {"protocol with comma", RFC_KEY, p_comma, 1, NULL, NULL,
     MMWS_EHS_SUBPROTOCOL},
    {"protocol with CRLF", RFC_KEY, p_crlf, 1, NULL, NULL,
     MMWS_EHS_SUBPROTOCOL},
    {"protocol with slash", RFC_KEY, p_slash, 1, NULL, NULL,
     MMWS_EHS_SUBPROTOCOL},
    {"empty name", RFC_KEY, NULL, 0, "", "v", MMWS_EHS_HEADER},
    {"name with space", RFC_KEY, NULL, 0, "X Y", "v", MMWS_EHS_HEADER},
    {"name with colon", RFC_KEY, NULL, 0, "X:", "v", MMWS_EHS_HEADER},
    {"name with CRLF", RFC_KEY, NULL, 0, "X\r\nEvil", "v", MMWS_EHS_HEADER},
    {"name non-ASCII", RFC_KEY, NULL, 0, "X-\xc3\xa9", "v", MMWS_EHS_HEADER},
    {"value with CR", RFC_KEY, NULL, 0, "X", "a\rb", MMWS_EHS_HEADER},
    {"value with LF", RFC_KEY, NULL, 0, "X", "a\nb", MMWS_EHS_HEADER},
    {"value with CRLF", RFC_KEY, NULL, 0, "X", "a\r\nHost: evil",
     MMWS_EHS_HEADER},
    {"value with 0x01", RFC_KEY, NULL, 0, "X", "a\x01", MMWS_EHS_HEADER},
    {"value with DEL", RFC_KEY, NULL, 0, "X", "\x7f", MMWS_EHS_HEADER},
    {"value with VT", RFC_KEY, NULL, 0, "X", "\v", MMWS_EHS_HEADER},
    {"Host", RFC_KEY, NULL, 0, "Host", "evil", MMWS_EHS_HEADER},
    {"host", RFC_KEY, NULL, 0, "host", "evil", MMWS_EHS_HEADER},
    {"UPGRADE", RFC_KEY, NULL, 0, "UPGRADE", "h2c", MMWS_EHS_HEADER},
    {"Connection", RFC_KEY, NULL, 0, "Connection", "close", MMWS_EHS_HEADER},
    {"Key", RFC_KEY, NULL, 0, "Sec-WebSocket-Key", "x", MMWS_EHS_HEADER},
    {"Version", RFC_KEY, NULL, 0, "sec-websocket-version", "8",
     MMWS_EHS_HEADER},
    {"Protocol", RFC_KEY, NULL, 0, "Sec-WebSocket-Protocol", "x",
     MMWS_EHS_HEADER},
    {"Extensions", RFC_KEY, NULL, 0, "SEC-WEBSOCKET-EXTENSIONS",
     "permessage-deflate", MMWS_EHS_HEADER},
    {"NULL value", RFC_KEY, NULL, 0, "X", NULL, MMWS_EINVAL},
    /* Near-misses of reserved names are ordinary headers. */
    {"Hosts", RFC_KEY, NULL, 0, "Hosts", "x", 0},
    {"Sec-WebSocket-Accept", RFC_KEY, NULL, 0, "Sec-WebSocket-Accept", "x", 0},
    {"tchars", RFC_KEY, NULL, 0, "!#$%&'*+-.^_`|~09azAZ", "\t x \x80\xff", 0},
};
#define N_BUILD_BAD (sizeof build_bads / sizeof build_bads[0])

static void test_build_errors(void) {
    mmws_url u;
    CHECK_RC(mmws_url_parse("wss://h/", 8, 0, 0, &u), 0);
    for (size_t i = 0; i < N_BUILD_BAD; i++) {
        const build_bad *c = &build_bads[i];
        mmws_header h = {c->hname, c->hvalue};
        mmws_handshake_request req = {&u, c->key, c->protos, c->nprotos,
                                      c->hname ? &h : NULL,
                                      c->hname ? 1u : 0u};
        char buf[512];
        size_t n = 777;
        t_case = c->what;
        CHECK_RC(mmws_handshake_build(&req, buf, sizeof buf, &n), c->rc);
        if (c->rc != 0) CHECK_EQ(n, 777);
    }
    t_case = "arguments";
    mmws_handshake_request req = {&u, RFC_KEY, NULL, 0, NULL, 0};
    char buf[512];
    size_t n;
    CHECK_RC(mmws_handshake_build(NULL, buf, sizeof buf, &n), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_build(&req, NULL, sizeof buf, &n), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_build(&req, buf, sizeof buf, NULL), MMWS_EINVAL);
    req.url = NULL;
    CHECK_RC(mmws_handshake_build(&req, buf, sizeof buf, &n), MMWS_EINVAL);
    req.headers = NULL;
    req.header_count = 1;
    req.url = &u;
    CHECK_RC(mmws_handshake_build(&req, buf, sizeof buf, &n), MMWS_EINVAL);
    /* A hand-filled URL cannot smuggle bytes into the request line. */
    mmws_url evil = u;
    mmws_handshake_request r2 = {&evil, RFC_KEY, NULL, 0, NULL, 0};
    evil.resource = "/x HTTP/1.1\r\nX: y";
    evil.resource_len = strlen(evil.resource);
    CHECK_RC(mmws_handshake_build(&r2, buf, sizeof buf, &n), MMWS_EINVAL);
    evil = u;
    evil.host = "h\r\nX: y";
    evil.host_len = strlen(evil.host);
    CHECK_RC(mmws_handshake_build(&r2, buf, sizeof buf, &n), MMWS_EINVAL);
    evil = u;
    evil.host_len = 0;
    CHECK_RC(mmws_handshake_build(&r2, buf, sizeof buf, &n), MMWS_EINVAL);
    evil = u;
    evil.port = 0;
    CHECK_RC(mmws_handshake_build(&r2, buf, sizeof buf, &n), MMWS_EINVAL);
    evil = u;
    evil.resource = "x";
    evil.resource_len = 1;
    CHECK_RC(mmws_handshake_build(&r2, buf, sizeof buf, &n), MMWS_EINVAL);
    /* Validation comes before space: a bad header with cap 0 is still
     * reported as a bad header. */
    mmws_header bad = {"Host", "x"};
    mmws_handshake_request r3 = {&u, RFC_KEY, NULL, 0, &bad, 1};
    CHECK_RC(mmws_handshake_build(&r3, buf, 0, &n), MMWS_EHS_HEADER);
}

/* --------------------------------------------------------- response -- */

#define ST101 "HTTP/1.1 101 Switching Protocols\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define ACC "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
#define OK_HDR ST101 UPG CONN ACC
#define R(s) s, sizeof(s) - 1

static const char *const offered[] = {"superchat", "chat"};

/* One server response and the verdict it must get. */
typedef struct resp_case {
    const char *name;
    const char *text;
    size_t len;
    int offer;          /* 1: offer {"superchat", "chat"}; 0: offer none */
    int rc;
    int status;
    int protocol_index;
    unsigned retry_after;
    const char *detail; /* expected substring of p.detail, or NULL */
} resp_case;

static const resp_case resp_cases[] = {
    /* valid */
    {"rfc 6455 1.3", R(OK_HDR "Sec-WebSocket-Protocol: chat\r\n\r\n"), 1, 0,
     101, 1, 0, NULL},
    {"minimal", R(OK_HDR "\r\n"), 0, 0, 101, -1, 0, NULL},
    {"minimal, protocols offered", R(OK_HDR "\r\n"), 1, 0, 101, -1, 0, NULL},
    {"name case", R(ST101 "upgrade: websocket\r\nCONNECTION: upgrade\r\n"
                          "sec-websocket-ACCEPT: " RFC_ACCEPT "\r\n\r\n"),
     0, 0, 101, -1, 0, NULL},
    {"Upgrade: WebSocket", R(ST101 "Upgrade: WebSocket\r\n" CONN ACC "\r\n"),
     0, 0, 101, -1, 0, NULL},
    {"keep-alive, Upgrade",
     R(ST101 UPG "Connection: keep-alive, Upgrade\r\n" ACC "\r\n"), 0, 0, 101,
     -1, 0, NULL},
    {"lists and OWS",
     R(ST101 "Upgrade:foo/2 ,\t websocket \r\nConnection:close,,upgrade\r\n"
             "Sec-WebSocket-Accept:\t " RFC_ACCEPT " \t\r\n\r\n"),
     0, 0, 101, -1, 0, NULL},
    {"split lists",
     R(ST101 "Upgrade: h2c\r\nUpgrade: websocket\r\nConnection: close\r\n"
             "Connection: upgrade\r\n" ACC "\r\n"),
     0, 0, 101, -1, 0, NULL},
    {"extra headers",
     R(ST101 "Server: nginx/1.25\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
             UPG "X-Empty:\r\n" CONN "X-Obs: caf\xc3\xa9\r\n" ACC
             "Sec-WebSocket-Extensions:\r\nRetry-After: 5\r\n\r\n"),
     0, 0, 101, -1, 0, NULL},
    {"subprotocol first", R(OK_HDR "Sec-WebSocket-Protocol: superchat\r\n\r\n"),
     1, 0, 101, 0, 0, NULL},
    {"subprotocol OWS", R(OK_HDR "Sec-WebSocket-Protocol:  \tchat \r\n\r\n"), 1,
     0, 101, 1, 0, NULL},
    {"frame after header", R(OK_HDR "\r\n\x81\x05hello\x89\x00"), 0, 0, 101,
     -1, 0, NULL},
    {"CRLFs after header", R(OK_HDR "\r\n\r\n\r\n\n\n"), 0, 0, 101, -1, 0,
     NULL},
    {"no reason", R("HTTP/1.1 101\r\n" UPG CONN ACC "\r\n"), 0, 0, 101, -1, 0,
     NULL},
    {"HTTP/1.0", R("HTTP/1.0 101 OK\r\n" UPG CONN ACC "\r\n"), 0, 0, 101, -1, 0,
     NULL},
    /* status */
    {"301", R("HTTP/1.1 301 Moved Permanently\r\nLocation: wss://x/\r\n\r\n"),
     0, MMWS_EHS_STATUS, 301, -1, 0, "server answered 301 Moved Permanently"},
    {"403 with body", R("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"),
     0, MMWS_EHS_STATUS, 403, -1, 0, "server answered 403 Forbidden"},
    {"429 Retry-After",
     R("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\n\r\n"), 0,
     MMWS_EHS_STATUS, 429, -1, 30, "server answered 429 Too Many Requests"},
    {"429 Retry-After OWS, twice",
     R("HTTP/1.1 429 Too Many Requests\r\nRetry-After:  7 \r\n"
       "Retry-After: 9\r\n\r\n"),
     0, MMWS_EHS_STATUS, 429, -1, 7, NULL},
    {"503 Retry-After date",
     R("HTTP/1.1 503 Service Unavailable\r\n"
       "Retry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n\r\n"),
     0, MMWS_EHS_STATUS, 503, -1, 0, "server answered 503 Service Unavailable"},
    {"503 Retry-After huge",
     R("HTTP/1.1 503 Service Unavailable\r\n"
       "Retry-After: 99999999999999999999999\r\n\r\n"),
     0, MMWS_EHS_STATUS, 503, -1, 86400, NULL},
    {"Retry-After negative",
     R("HTTP/1.1 503 x\r\nRetry-After: -5\r\n\r\n"), 0, MMWS_EHS_STATUS, 503,
     -1, 0, NULL},
    {"200 with websocket headers", R("HTTP/1.1 200 OK\r\n" UPG CONN ACC "\r\n"),
     0, MMWS_EHS_STATUS, 200, -1, 0, "server answered 200 OK"},
    {"100 Continue", R("HTTP/1.1 100 Continue\r\n\r\n"), 0, MMWS_EHS_STATUS,
     100, -1, 0, NULL},
    {"no reason 404", R("HTTP/1.1 404\r\n\r\n"), 0, MMWS_EHS_STATUS, 404, -1,
     0, "server answered 404"},
    {"obs-text reason", R("HTTP/1.1 500 Erreur \xe9\tx\r\n\r\n"), 0,
     MMWS_EHS_STATUS, 500, -1, 0, "server answered 500 Erreur ??x"},
    /* accept */
    {"bad accept",
     R(ST101 UPG CONN "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n"
                      "\r\n"),
     0, MMWS_EHS_ACCEPT, 101, -1, 0, "does not match the key"},
    {"accept wrong case",
     R(ST101 UPG CONN "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n"
                      "\r\n"),
     0, MMWS_EHS_ACCEPT, 101, -1, 0, "does not match the key"},
    {"accept extra char",
     R(ST101 UPG CONN "Sec-WebSocket-Accept: " RFC_ACCEPT "x\r\n\r\n"), 0,
     MMWS_EHS_ACCEPT, 101, -1, 0, "does not match the key"},
    {"accept empty", R(ST101 UPG CONN "Sec-WebSocket-Accept:\r\n\r\n"), 0,
     MMWS_EHS_ACCEPT, 101, -1, 0, "does not match the key"},
    {"missing accept", R(ST101 UPG CONN "\r\n"), 0, MMWS_EHS_ACCEPT, 101, -1,
     0, "missing"},
    {"repeated accept", R(OK_HDR ACC "\r\n"), 0, MMWS_EHS_ACCEPT, 101, -1, 0,
     "repeated"},
    /* upgrade, connection */
    {"missing Upgrade", R(ST101 CONN ACC "\r\n"), 0, MMWS_EHS_UPGRADE, 101, -1,
     0, "Upgrade"},
    {"Upgrade: h2c", R(ST101 "Upgrade: h2c\r\n" CONN ACC "\r\n"), 0,
     MMWS_EHS_UPGRADE, 101, -1, 0, NULL},
    {"Upgrade: websockets", R(ST101 "Upgrade: websockets\r\n" CONN ACC "\r\n"),
     0, MMWS_EHS_UPGRADE, 101, -1, 0, NULL},
    {"Upgrade: web socket", R(ST101 "Upgrade: web socket\r\n" CONN ACC "\r\n"),
     0, MMWS_EHS_UPGRADE, 101, -1, 0, NULL},
    {"missing Connection", R(ST101 UPG ACC "\r\n"), 0, MMWS_EHS_CONNECTION,
     101, -1, 0, "Connection"},
    {"Connection: keep-alive",
     R(ST101 UPG "Connection: keep-alive\r\n" ACC "\r\n"), 0,
     MMWS_EHS_CONNECTION, 101, -1, 0, NULL},
    {"Connection: upgrades", R(ST101 UPG "Connection: upgrades\r\n" ACC "\r\n"),
     0, MMWS_EHS_CONNECTION, 101, -1, 0, NULL},
    /* protocol, extensions */
    {"unrequested protocol", R(OK_HDR "Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
     1, MMWS_EHS_PROTOCOL, 101, -1, 0, "not offered"},
    {"protocol wrong case", R(OK_HDR "Sec-WebSocket-Protocol: Chat\r\n\r\n"), 1,
     MMWS_EHS_PROTOCOL, 101, -1, 0, NULL},
    {"protocol list",
     R(OK_HDR "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"), 1,
     MMWS_EHS_PROTOCOL, 101, -1, 0, NULL},
    {"protocol empty", R(OK_HDR "Sec-WebSocket-Protocol:\r\n\r\n"), 1,
     MMWS_EHS_PROTOCOL, 101, -1, 0, NULL},
    {"protocol repeated",
     R(OK_HDR "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"
              "\r\n"),
     1, MMWS_EHS_PROTOCOL, 101, -1, 0, "repeated"},
    {"protocol when none offered",
     R(OK_HDR "Sec-WebSocket-Protocol: chat\r\n\r\n"), 0, MMWS_EHS_PROTOCOL,
     101, -1, 0, "none was offered"},
    {"extension",
     R(OK_HDR "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"), 0,
     MMWS_EHS_EXTENSION, 101, -1, 0, "Extensions"},
    /* malformed */
    {"garbage", R("garbage\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"empty header", R("\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"SSH banner", R("SSH-2.0-OpenSSH_9.6\r\n"), 0, MMWS_EHS_MALFORMED, 0, -1,
     0, NULL},
    {"TLS alert", R("\x15\x03\x03\x00\x02\x02\x46"), 0, MMWS_EHS_MALFORMED, 0,
     -1, 0, NULL},
    {"lower-case http", R("http/1.1 101 OK\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"HTTP/2 status line", R("HTTP/2 101\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"HTTP/2.0 status line", R("HTTP/2.0 101 OK\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"HTTP/1.x", R("HTTP/1.x 101 OK\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"HTTP/1.11", R("HTTP/1.11 101 OK\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"two-digit status", R("HTTP/1.1 10 OK\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"four-digit status", R("HTTP/1.1 1010 OK\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"double space", R("HTTP/1.1  101 OK\r\n" UPG CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"status line only version", R("HTTP/1.1\r\n\r\n"), 0, MMWS_EHS_MALFORMED,
     0, -1, 0, NULL},
    {"control in reason", R("HTTP/1.1 101 Swi\x01tching\r\n" UPG CONN ACC "\r\n"),
     0, MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"bare LF everywhere",
     R("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, "bare LF"},
    {"bare LF in one line", R(ST101 "Upgrade: websocket\n" CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 0, -1, 0, "bare LF"},
    {"bare LF at start", R("\n"), 0, MMWS_EHS_MALFORMED, 0, -1, 0, NULL},
    {"bare CR", R(OK_HDR "X-A: a\rb\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 101, -1, 0,
     "bare CR"},
    {"CR CR LF", R(OK_HDR "X-A: a\r\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 101, -1, 0,
     NULL},
    {"obs-fold", R(ST101 UPG "Connection:\r\n Upgrade\r\n" ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 101, -1, 0, "obs-fold"},
    {"obs-fold tab", R(OK_HDR "X-A: a\r\n\tb\r\n\r\n"), 0, MMWS_EHS_MALFORMED,
     101, -1, 0, "obs-fold"},
    {"NUL in value", R(OK_HDR "X-A: a\0b\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 101,
     -1, 0, "control character"},
    {"NUL in name", R(OK_HDR "X\0A: b\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 101, -1,
     0, NULL},
    {"DEL in value", R(OK_HDR "X-A: \x7f\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 101,
     -1, 0, NULL},
    {"ESC in value", R(OK_HDR "X-A: \x1b[31m\r\n\r\n"), 0, MMWS_EHS_MALFORMED,
     101, -1, 0, NULL},
    {"no colon", R(ST101 "Upgrade websocket\r\n" CONN ACC "\r\n"), 0,
     MMWS_EHS_MALFORMED, 101, -1, 0, "no colon"},
    {"space before colon", R(ST101 "Upgrade : websocket\r\n" CONN ACC "\r\n"),
     0, MMWS_EHS_MALFORMED, 101, -1, 0, "token"},
    {"empty name", R(OK_HDR ": x\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 101, -1, 0,
     NULL},
    {"non-token name", R(OK_HDR "X(A): x\r\n\r\n"), 0, MMWS_EHS_MALFORMED, 101,
     -1, 0, NULL},
    {"malformed beats status",
     R("HTTP/1.1 429 Slow\r\nRetry-After 5\r\n\r\n"), 0, MMWS_EHS_MALFORMED,
     429, -1, 0, NULL},
    /* incomplete */
    {"half a header", R(ST101 UPG CONN), 0, MMWS_EINCOMPLETE, 0, -1, 0, NULL},
    {"CR LF CR", R(OK_HDR "\r"), 0, MMWS_EINCOMPLETE, 0, -1, 0, NULL},
    {"prefix of HTTP", R("HTTP/"), 0, MMWS_EINCOMPLETE, 0, -1, 0, NULL},
};
#define N_RESP (sizeof resp_cases / sizeof resp_cases[0])

/* What a parse run ended with. */
typedef struct verdict {
    int rc;
    int status;
    int protocol_index;
    unsigned retry_after;
    size_t header_len;
    char detail[MMWS_DETAIL_LEN];
} verdict;

/* Initialises p as case c wants, with max_header. */
static void init_for(mmws_handshake_parser *p, const resp_case *c,
                     size_t max_header) {
    CHECK_RC(mmws_handshake_parser_init(p, RFC_KEY, c->offer ? offered : NULL,
                                        c->offer ? 2 : 0, max_header),
             0);
}

/* Copies the parser's results into v. */
static void take(verdict *v, int rc, const mmws_handshake_parser *p) {
    v->rc = rc;
    v->status = p->status;
    v->protocol_index = p->protocol_index;
    v->retry_after = p->retry_after_s;
    v->header_len = rc == 0 ? p->header_len : 0;
    memcpy(v->detail, p->detail, sizeof v->detail);
}

/* Feeds buf[0..len) through cuts: each call passes buf[0..cuts[i]). */
static void feed(const resp_case *c, const char *buf, const size_t *cuts,
                 size_t ncuts, size_t max_header, verdict *v) {
    mmws_handshake_parser p;
    int rc = MMWS_EINCOMPLETE;
    init_for(&p, c, max_header);
    for (size_t i = 0; i < ncuts && rc == MMWS_EINCOMPLETE; i++)
        rc = mmws_handshake_parse(&p, buf, cuts[i]);
    take(v, rc, &p);
}

/* 1 if the two verdicts are the same in every field. */
static int same(const verdict *a, const verdict *b) {
    return a->rc == b->rc && a->status == b->status &&
           a->protocol_index == b->protocol_index &&
           a->retry_after == b->retry_after && a->header_len == b->header_len &&
           strcmp(a->detail, b->detail) == 0;
}

/* Index just past the first CRLF CRLF in s[0..n), or 0. */
static size_t header_end(const char *s, size_t n) {
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0) return i + 4;
    return 0;
}

/* Checks the whole-buffer verdict of every case against the table. */
static void test_response_table(void) {
    for (size_t i = 0; i < N_RESP; i++) {
        const resp_case *c = &resp_cases[i];
        size_t cut = c->len;
        verdict v;
        t_case = c->name;
        feed(c, c->text, &cut, 1, 0, &v);
        CHECK_RC(v.rc, c->rc);
        CHECK_EQ(v.status, c->status);
        CHECK_EQ(v.protocol_index, c->protocol_index);
        CHECK_EQ(v.retry_after, c->retry_after);
        if (c->rc == 0) {
            CHECK_EQ(v.header_len, header_end(c->text, c->len));
            CHECK_EQ(v.detail[0], 0);
        } else if (c->rc != MMWS_EINCOMPLETE) {
            CHECK(strlen(v.detail) > 10);
        }
        if (c->detail) CHECK(strstr(v.detail, c->detail) != NULL);
        if (c->detail && !strstr(v.detail, c->detail))
            fprintf(stderr, "  detail was \"%s\"\n", v.detail);
    }
}

/* Whole, one byte at a time, and every two-call split agree. */
static void test_response_splits(void) {
    static size_t cuts[4096];
    for (size_t i = 0; i < N_RESP; i++) {
        const resp_case *c = &resp_cases[i];
        verdict whole, v;
        t_case = c->name;
        feed(c, c->text, &c->len, 1, 0, &whole);
        for (size_t k = 0; k < c->len; k++) cuts[k] = k + 1;
        feed(c, c->text, cuts, c->len, 0, &v);
        CHECK(same(&v, &whole));
        unsigned differ = 0;
        for (size_t k = 0; k <= c->len; k++) {
            size_t two[2] = {k, c->len};
            feed(c, c->text, two, 2, 0, &v);
            differ += !same(&v, &whole);
        }
        CHECK_EQ(differ, 0);
    }
}

/* Every prefix of every response, ending at a PROT_NONE page. */
static void test_response_guard(void) {
    for (size_t i = 0; i < N_RESP; i++) {
        const resp_case *c = &resp_cases[i];
        unsigned differ = 0;
        t_case = c->name;
        for (size_t n = 0; n <= c->len; n++) {
            char *g = (char *)guard_alloc(n);
            memcpy(g, c->text, n);
            verdict a, b;
            feed(c, g, &n, 1, 0, &a);
            feed(c, c->text, &n, 1, 0, &b);
            differ += !same(&a, &b);
            /* And grown to n one byte at a time in the guarded copy. */
            mmws_handshake_parser p;
            init_for(&p, c, 0);
            int rc = MMWS_EINCOMPLETE;
            for (size_t k = 0; k <= n && rc == MMWS_EINCOMPLETE; k++)
                rc = mmws_handshake_parse(&p, g, k);
            differ += rc != b.rc;
            guard_free((unsigned char *)g, n);
        }
        CHECK_EQ(differ, 0);
    }
}

/* A 16 KiB header passes at the default bound, one byte more does not;
 * a small bound is enforced at every split; frame bytes past the bound
 * do not count. */
static void test_response_bound(void) {
    static char big[MMWS_HS_DEFAULT_MAX_HEADER + 64];
    const char *head = OK_HDR "X-Pad: ";
    size_t hl = strlen(head);
    size_t total = MMWS_HS_DEFAULT_MAX_HEADER;
    memcpy(big, head, hl);
    memset(big + hl, 'p', total - hl - 4);
    memcpy(big + total - 4, "\r\n\r\n", 4);
    memset(big + total, 0x81, sizeof big - total);
    resp_case c = {"bound", big, total, 0, 0, 101, -1, 0, NULL};
    verdict v;
    size_t n = sizeof big;
    feed(&c, big, &n, 1, 0, &v);
    CHECK_RC(v.rc, 0);
    CHECK_EQ(v.header_len, total);
    /* One more pad byte: the terminator ends past the bound. */
    memset(big + hl, 'p', total - hl - 3);
    memcpy(big + total - 3, "\r\n\r\n", 4);
    feed(&c, big, &n, 1, 0, &v);
    CHECK_RC(v.rc, MMWS_EHS_TOOBIG);
    n = total;
    feed(&c, big, &n, 1, 0, &v);
    CHECK_RC(v.rc, MMWS_EHS_TOOBIG);
    n = total - 1;
    feed(&c, big, &n, 1, 0, &v);
    CHECK_RC(v.rc, MMWS_EINCOMPLETE);

    /* Small bound: the minimal response is exactly max bytes. */
    const char ok[] = OK_HDR "\r\n\x81\x00";
    size_t okh = sizeof ok - 3;
    resp_case s = {"small bound", ok, sizeof ok - 1, 0, 0, 101, -1, 0, NULL};
    unsigned bad = 0;
    for (size_t max = okh - 3; max <= okh + 3; max++) {
        int want = max >= okh ? 0 : MMWS_EHS_TOOBIG;
        for (size_t k = 0; k <= s.len; k++) {
            size_t two[2] = {k, s.len};
            feed(&s, ok, two, 2, max, &v);
            bad += v.rc != want;
            if (want == MMWS_EHS_TOOBIG && strstr(v.detail, "maximum") == NULL)
                bad++;
        }
        size_t cuts[256];
        for (size_t k = 0; k < s.len; k++) cuts[k] = k + 1;
        feed(&s, ok, cuts, s.len, max, &v);
        bad += v.rc != want;
    }
    CHECK_EQ(bad, 0);

    /* len already past the bound on the first call. */
    memset(big, 'H', sizeof big);
    memcpy(big, "HTTP/1.1 101 OK\r\n", 17);
    n = sizeof big;
    feed(&c, big, &n, 1, 0, &v);
    CHECK_RC(v.rc, MMWS_EHS_TOOBIG);
}

static void test_parser_init(void) {
    mmws_handshake_parser p;
    memset(&p, 0x5A, sizeof p);
    CHECK_RC(mmws_handshake_parser_init(&p, RFC_KEY, NULL, 0, 0), 0);
    CHECK_STR(p.accept, RFC_ACCEPT);
    CHECK_EQ(p.max_header, MMWS_HS_DEFAULT_MAX_HEADER);
    CHECK_EQ(p.status, 0);
    CHECK_EQ(p.protocol_index, -1);
    CHECK_EQ(p.retry_after_s, 0);
    CHECK_EQ(p.header_len, 0);
    CHECK_EQ(p.scanned, 0);
    CHECK_EQ(p.detail[0], 0);
    CHECK_RC(mmws_handshake_parser_init(&p, RFC_KEY, offered, 2, 100), 0);
    CHECK_EQ(p.max_header, 100);
    CHECK_RC(mmws_handshake_parser_init(NULL, RFC_KEY, NULL, 0, 0), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_parser_init(&p, NULL, NULL, 0, 0), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_parser_init(&p, "short", NULL, 0, 0), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_parser_init(&p, RFC_KEY, NULL, 1, 0), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_parse(NULL, "x", 1), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_parser_init(&p, RFC_KEY, NULL, 0, 0), 0);
    CHECK_RC(mmws_handshake_parse(&p, NULL, 1), MMWS_EINVAL);
    CHECK_RC(mmws_handshake_parse(&p, NULL, 0), MMWS_EINCOMPLETE);
}

/* After success, calling again (more bytes arrived) gives the same answer,
 * and the bytes after header_len are the first frame. */
static void test_response_again(void) {
    const char r[] = OK_HDR "Sec-WebSocket-Protocol: chat\r\n\r\n\x81\x02hi";
    mmws_handshake_parser p;
    CHECK_RC(mmws_handshake_parser_init(&p, RFC_KEY, offered, 2, 0), 0);
    size_t hl = sizeof r - 1 - 4;
    CHECK_RC(mmws_handshake_parse(&p, r, hl - 1), MMWS_EINCOMPLETE);
    CHECK_RC(mmws_handshake_parse(&p, r, hl), 0);
    CHECK_EQ(p.header_len, hl);
    CHECK_EQ(p.protocol_index, 1);
    CHECK_RC(mmws_handshake_parse(&p, r, sizeof r - 1), 0);
    CHECK_EQ(p.header_len, hl);
    CHECK_MEM(r + p.header_len, sizeof r - 1 - p.header_len, "\x81\x02hi", 4);
}

/* A reason phrase longer than the detail buffer is cut, not overflowed. */
static void test_long_reason(void) {
    char r[600];
    memcpy(r, "HTTP/1.1 418 ", 13);
    memset(r + 13, 'T', 500);
    memcpy(r + 513, "\r\n\r\n", 4);
    mmws_handshake_parser p;
    CHECK_RC(mmws_handshake_parser_init(&p, RFC_KEY, NULL, 0, 0), 0);
    CHECK_RC(mmws_handshake_parse(&p, r, 517), MMWS_EHS_STATUS);
    CHECK_EQ(p.status, 418);
    CHECK_EQ(strlen(p.detail), MMWS_DETAIL_LEN - 1);
    CHECK(strncmp(p.detail, "server answered 418 TTT", 23) == 0);
}

/* A request built here, answered by the RFC response, round-trips. */
static void test_round_trip(void) {
    char key[MMWS_HS_KEY_LEN + 1], acc[MMWS_HS_ACCEPT_LEN + 1];
    char req_buf[512], resp[256];
    mmws_url u;
    CHECK_RC(mmws_handshake_key(key), 0);
    CHECK_RC(mmws_url_parse("wss://h/x", 9, 0, 0, &u), 0);
    mmws_handshake_request req = {&u, key, offered, 2, NULL, 0};
    size_t n;
    CHECK_RC(mmws_handshake_build(&req, req_buf, sizeof req_buf, &n), 0);
    CHECK(strstr(req_buf, key) != NULL);
    CHECK_RC(mmws_handshake_accept(key, strlen(key), acc), 0);
    int rn = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
                      "\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                      "Sec-WebSocket-Protocol: superchat\r\n\r\n",
                      acc);
    mmws_handshake_parser p;
    CHECK_RC(mmws_handshake_parser_init(&p, key, offered, 2, 0), 0);
    CHECK_RC(mmws_handshake_parse(&p, resp, (size_t)rn), 0);
    CHECK_EQ(p.protocol_index, 0);
    CHECK_EQ(p.header_len, (size_t)rn);
}

int main(void) {
    RUN(test_accept_rfc);
    RUN(test_key);
    RUN(test_random_bytes);
    RUN(test_build_exact);
    RUN(test_build_enospc);
    RUN(test_build_errors);
    RUN(test_parser_init);
    RUN(test_response_table);
    RUN(test_response_splits);
    RUN(test_response_guard);
    RUN(test_response_bound);
    RUN(test_response_again);
    RUN(test_long_reason);
    RUN(test_round_trip);
    return TEST_END("test_handshake");
}
