/*
 * net: the only module that talks to libevent and to OpenSSL's plumbing.
 * It owns event loops, listeners, connections (plain or TLS bufferevents),
 * timers and signals, and reports to its users through the small event set
 * below, the way OpenSMTPD's ioev.h does. The session layer reads and writes
 * through the net_conn_* calls and never sees an event2 type. The HTTP side
 * of the control API is in net_http.c, the TLS context in net_tls.c.
 */
#ifndef EMU_NET_H
#define EMU_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "cidr.h"

struct net;
struct net_conn;
struct net_listener;
struct net_timer;
struct net_tls;

enum net_event {
    NET_EV_READ,      /* new bytes in the input buffer */
    NET_EV_DRAINED,   /* everything written has left our buffers */
    NET_EV_TLS_READY, /* the TLS handshake finished */
    NET_EV_TIMEOUT,   /* no input for the idle timeout */
    NET_EV_EOF,       /* the peer closed its sending side */
    NET_EV_ERROR,     /* socket or TLS failure: only freeing is left */
};

const char *net_event_name(enum net_event ev);

/* Called for each event; the callee may free the connection. */
typedef void net_conn_fn(struct net_conn *c, enum net_event ev, void *arg);
/* A new connection: the callee owns `fd` (net_conn_new or close). */
typedef void net_accept_fn(struct net_listener *l, int fd,
                           const struct sockaddr *sa, socklen_t salen,
                           void *arg);
typedef void net_timer_fn(void *arg);
typedef void net_signal_fn(int sig, void *arg);

/* --- event loop (one per worker thread) --- */
struct net *net_new(void);
void net_free(struct net *n);
/* Run until net_break(); 0 or -1. */
int net_run(struct net *n);
void net_break(struct net *n);
/* Wall-clock seconds, cached per loop iteration (cheap). */
double net_now(struct net *n);
int net_on_signal(struct net *n, int sig, net_signal_fn *fn, void *arg);

/* --- listeners --- */
/* How a listening socket shares its address (SO_REUSEPORT, for workers). */
enum net_share {
    NET_ALONE,       /* the only socket on the address */
    NET_SHARE_FIRST, /* the first of several: the address must be free */
    NET_SHARE_JOIN,  /* one more on the address the first one got */
};
/* Bind and listen; on failure returns NULL with one line in `err`. */
struct net_listener *net_listen(struct net *n, const char *host, uint16_t port,
                                enum net_share share, net_accept_fn *fn,
                                void *arg, char *err, size_t errlen);
uint16_t net_listener_port(const struct net_listener *l);
/* net_listener_free() also frees the callback argument (emu_free). */
void net_listener_set_owned_arg(struct net_listener *l);
void net_listener_free(struct net_listener *l);

/* --- connections --- */
/* Take `fd`; with `tls` the handshake (implicit TLS) starts at once and
 * NET_EV_TLS_READY follows. NULL on failure (fd closed). */
struct net_conn *net_conn_new(struct net *n, int fd, struct net_tls *tls,
                              net_conn_fn *fn, void *arg);
/* Close at once (FIN) and free; pending output is dropped. */
void net_conn_free(struct net_conn *c);
/* Abort with RST (SO_LINGER 0) and free. */
void net_conn_reset(struct net_conn *c);
void net_conn_set_timeout(struct net_conn *c, unsigned seconds);
/* Stop or restart delivery of NET_EV_READ (a delayed reply, a hang). */
void net_conn_read_enable(struct net_conn *c, bool on);

int net_conn_write(struct net_conn *c, const void *p, size_t len);
size_t net_conn_out_len(struct net_conn *c);
size_t net_conn_in_len(struct net_conn *c);
/* Offset of the first '\n' within the first `max` input bytes, or -1. */
long net_conn_find_lf(struct net_conn *c, size_t max);
/* Make the first `n` input bytes contiguous; borrowed until the next
 * call on `c`. NULL when fewer bytes are buffered. */
const char *net_conn_pullup(struct net_conn *c, size_t n);
/* Up to `max` contiguous regions covering the start of the input. */
int net_conn_peek(struct net_conn *c, struct iovec *v, int max);
void net_conn_drain(struct net_conn *c, size_t n);

/* Replace the plain transport with TLS (STARTTLS, RFC 3207). Any input not
 * yet read is discarded first; the count is returned in *discarded so the
 * caller can log the injection attempt. 0 or -1. */
int net_conn_start_tls(struct net_conn *c, struct net_tls *tls,
                       size_t *discarded);
bool net_conn_is_tls(const struct net_conn *c);

struct net_tls_info {
    char version[16];
    char cipher[64];
    bool client_cert; /* the client presented a certificate */
    bool verified;    /* ... and it verified against --tls-ca */
    char verify_error[96];
    char subject[256];
    char issuer[256];
    char sans[512]; /* "DNS:a.example,IP:192.0.2.1", comma-separated */
    char not_after[32];
};
/* Fill `out` after NET_EV_TLS_READY; -1 when the conn is not TLS. */
int net_conn_tls_info(struct net_conn *c, struct net_tls_info *out);
/* Last TLS error text for logs (handshake failures). */
const char *net_conn_tls_error(struct net_conn *c, char *buf, size_t cap);

/* Local port of a connection (for logs and PROXY). */
int net_conn_local(struct net_conn *c, struct ip_addr *addr, uint16_t *port);

/* --- timers --- */
struct net_timer *net_timer_new(struct net *n, net_timer_fn *fn, void *arg);
void net_timer_start(struct net_timer *t, double seconds);
void net_timer_stop(struct net_timer *t);
bool net_timer_pending(const struct net_timer *t);
void net_timer_free(struct net_timer *t);

/* --- TLS context (net_tls.c) --- */
/* Load a certificate chain, key and optional CA for client certificates.
 * NULL with one line in `err` when a file is unreadable or the key does not
 * match the certificate. */
struct net_tls *net_tls_new(const char *cert, const char *key, const char *ca,
                            char *err, size_t errlen);
void net_tls_free(struct net_tls *t);

/* Variants of the server's TLS set-up that scenarios pick per handshake
 * (on_tls): another certificate from certs/ (server-NAME.pem and .key, or
 * "alert": every handshake fails with a handshake_failure alert) and a
 * range of protocol versions ("1.0-1.1", "1.3"). Created on first use,
 * shared by all workers. */
struct net_tls_cache;
struct net_tls_cache *net_tls_cache_new(struct net_tls *base, const char *cert,
                                        const char *key, const char *ca,
                                        const char *certs_dir);
void net_tls_cache_free(struct net_tls_cache *c);
/* NULL with err on a bad name or version, or an unreadable file. */
struct net_tls *net_tls_cache_get(struct net_tls_cache *c, const char *cert,
                                  const char *versions, char *err,
                                  size_t errlen);
/* Make every variant now (before dropping root: the keys are 0600). */
int net_tls_cache_preload(struct net_tls_cache *c, char *err, size_t errlen);

/* --- HTTP (net_http.c): the control API's transport --- */
struct net_http;
struct net_http_req;
/* Called once per request; the callee must answer with net_http_reply(),
 * now or later (the request stays valid until then, unless the client
 * goes away: see net_http_req_gone). */
typedef void net_http_fn(struct net_http_req *r, void *arg);

struct net_http *net_http_new(struct net *n, const char *host, uint16_t port,
                              size_t max_body, net_http_fn *fn, void *arg,
                              char *err, size_t errlen);
uint16_t net_http_port(const struct net_http *h);
void net_http_free(struct net_http *h);

const char *net_http_method(const struct net_http_req *r); /* "GET", ... */
/* The decoded path, without the query string. */
const char *net_http_path(const struct net_http_req *r);
/* A decoded query parameter, or NULL. Borrowed until the reply. */
const char *net_http_query(const struct net_http_req *r, const char *key);
const char *net_http_header(const struct net_http_req *r, const char *name);
/* The request body (NUL-terminated); borrowed until the reply. */
const char *net_http_body(struct net_http_req *r, size_t *len);
/* True once the client has closed the connection of a pending request. */
bool net_http_req_gone(const struct net_http_req *r);
void net_http_add_header(struct net_http_req *r, const char *name,
                         const char *value);
/* Send the response and release the request. */
void net_http_reply(struct net_http_req *r, int status, const char *ctype,
                    const char *body, size_t len);

/* --- Redis (net_redis.c): the shared state store of replicas --- */
struct net_redis;
enum net_redis_type { NR_NIL, NR_STRING, NR_INTEGER, NR_ERROR, NR_ARRAY };
struct net_redis_reply {
    enum net_redis_type type;
    const char *str; /* NR_STRING, NR_ERROR (borrowed during the call) */
    size_t len;
    long long integer;
    const struct net_redis_reply *elems; /* NR_ARRAY, one level */
    size_t n;
};
/* A reply, or an error text: reply NULL when Redis was not reached in
 * time (a timeout, a lost connection), an NR_ERROR reply when Redis
 * answered with an error. Called exactly once per command, maybe before
 * net_redis_command returns (then it returns 1). */
typedef void net_redis_fn(const struct net_redis_reply *reply, const char *err,
                          void *arg);
/* Connection up or down (for logs and metrics). */
typedef void net_redis_state_fn(bool up, const char *err, void *arg);

struct net_redis *net_redis_new(struct net *n, const char *host, uint16_t port,
                                unsigned db, double timeout,
                                net_redis_state_fn *on_state, void *arg);
bool net_redis_connected(const struct net_redis *r);
/* Send a command (binary-safe arguments). Returns 1 when `fn` has already
 * been called (an immediate failure), 0 when the reply will come later. */
int net_redis_command(struct net_redis *r, net_redis_fn *fn, void *arg,
                      int argc, const char **argv, const size_t *lens);
/* Pending callbacks run (with an error) before this returns. */
void net_redis_free(struct net_redis *r);

/* Address of a sockaddr as text and port. */
void net_sockaddr_format(const struct sockaddr *sa, char *host, size_t cap,
                         uint16_t *port);

#endif
