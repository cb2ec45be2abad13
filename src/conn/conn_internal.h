/*
 * conn_internal.h — the connection's private state, shared by conn.c (the
 * state machine and data path) and config.c (defaults, validation, the
 * owned copy of the config). Not public.
 */
#ifndef MMWS_CONN_INTERNAL_H
#define MMWS_CONN_INTERNAL_H

#include <mmws/conn.h>

#include "codec/err_internal.h"
#include "net/dns.h"
#include "net/io.h"
#include "net/transport.h"

#define MMWS__ERR_LEN 256
/* Bytes of getrandom output fetched at once for masking keys. */
#define MMWS__RAND_POOL 4096

/* The config as the connection keeps it: every string and array copied
 * into one allocation (strings), so the caller's may go away. */
typedef struct mmws__conn_cfg {
    mmws_conn_config pub;   /* scalar fields; pointers aim into `strings` */
    mmws_url url;           /* parsed pub.wss_url */
    char host[256];         /* url host, NUL-terminated (DNS, SNI, verify) */
    char *strings;          /* the one block all copied strings live in */
    const char **on_connect;        /* owned: array and strings in one
                                       block, replaced by set_on_connect */
    const char **subprotocols;      /* owned array */
    mmws_header *headers;           /* owned array */
    size_t app_pong_len;            /* strlen(pub.app_pong_payload) */
    size_t request_cap;             /* bytes the upgrade request can need */
} mmws__conn_cfg;

/* Upper bound on the upgrade request's size for cfg. */
size_t mmws__conn_request_cap(const mmws_conn_config *cfg);

/* Validates cfg; on error writes a sentence naming the field into err. */
int mmws__conn_cfg_check(const mmws_conn_config *cfg, char *err,
                         size_t err_len);

/* Copies a validated cfg into out (one allocation for all strings).
 * Returns 0 or MMWS_ENOMEM. */
int mmws__conn_cfg_copy(mmws__conn_cfg *out, const mmws_conn_config *cfg);

/* Replaces out's on_connect list with a copy of msgs. 0 or MMWS_ENOMEM. */
int mmws__conn_cfg_set_on_connect(mmws__conn_cfg *out,
                                  const char *const *msgs, size_t count);

/* Frees what mmws__conn_cfg_copy allocated. */
void mmws__conn_cfg_free(mmws__conn_cfg *c);

/* Parses a "resolve" override ("127.0.0.1,::1") into addrs with port.
 * Returns 0 or MMWS_ECONFIG. */
int mmws__parse_resolve(const char *list, uint16_t port, mmws__addrs *addrs);

/* Makes the transport of one connection attempt (test hook, below): a new
 * transport owning its fd, or NULL with a sentence in detail. */
typedef mmws__transport *(*mmws__transport_factory)(void *user, char *detail,
                                                    size_t detail_len);

/*
 * Test hook (fuzzing, not exported): every attempt of c from now on takes
 * its transport from make(user, ...) instead of DNS + TCP (+ TLS), then
 * goes on exactly as after a TCP connect: the transport's handshake op
 * (phase TLS; the fd is watched for readiness), the upgrade, and the rest
 * of the state machine unchanged (timers, reconnect, close). Call it right
 * after mmws_conn_new: it restarts the attempt that call began (unless the
 * user closed). make NULL goes back to DNS + TCP for later attempts.
 */
void mmws__conn_set_transport_factory(mmws_conn *c,
                                      mmws__transport_factory make,
                                      void *user);

/*
 * mmws_conn_new, but a wss:// connection holds a reference to tls (when
 * not NULL) instead of building its own context. A context that fails a
 * handshake is still dropped and the next attempt builds the connection's
 * own (see conn.c).
 */
int mmws__conn_new_shared(mmws_loop *loop, const mmws_conn_config *cfg,
                          mmws_on_message on_message, void *user,
                          mmws__tls_ctx *tls, mmws_conn **out);

/* The TLS context c holds now (NULL for ws:// or between a failed
 * handshake and the next attempt); the caller may take a reference. */
mmws__tls_ctx *mmws__conn_tls_ctx(const mmws_conn *c);

/* 1 if c's last TLS handshake failed (set before the failure's on_state;
 * c then drops its context and its next attempt builds its own). */
int mmws__conn_tls_failed(const mmws_conn *c);

#endif /* MMWS_CONN_INTERNAL_H */
