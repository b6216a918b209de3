/*
 * net: libevent plumbing. Each worker has one struct net (an event_base).
 * A plain connection is a socket with a persistent read event and two flat
 * buffers. Input is read with one read into the worker's scratch buffer and
 * handed to the session from there; only what the session leaves unread is
 * copied into the connection's own buffer, so an idle connection holds no
 * input memory and the common case costs no allocation. Output written
 * during a callback is flushed with one write when the callback returns
 * (the "dirty list"), so pipelined replies coalesce and a reply costs no
 * epoll_ctl unless the socket is full. This matters: on loopback the
 * syscalls are most of the cost of an SMTP session. A TLS connection
 * (implicit, or after STARTTLS on the same descriptor) is an OpenSSL
 * socket bufferevent. Nothing outside net*.c includes event2.
 */
#include "net.h"
#include "net_int.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct net_signal_slot {
    struct net *net;
    struct event *ev;
    net_signal_fn *fn;
    void *arg;
};

/* Bytes read from a plain socket at once. */
#define READ_CHUNK 16384
/* Output buffer a connection keeps between replies. A bigger one (a client
 * that pipelines) goes back to the worker as its spare, up to OUT_SPARE, for
 * the next connection that needs room: no realloc series per callback. */
#define OUT_KEEP 1024
#define OUT_SPARE (1024 * 1024)

struct net {
    struct event_base *base;
    struct net_signal_slot signals[8];
    size_t n_signals;
    struct net_conn *dirty;   /* plain connections with unflushed output */
    char *scratch;            /* READ_CHUNK bytes: where plain reads land */
    struct net_conn *reading; /* whose input is in scratch, or NULL */
    struct buf spare;         /* an empty output buffer to hand out */
};

struct net_listener {
    struct net *net;
    struct evconnlistener *ev;
    struct event *retry; /* re-enables accepting after EMFILE */
    int fd;
    uint16_t port;
    net_accept_fn *fn;
    void *arg;
    bool own_arg;
};

struct net_conn {
    struct net *net;
    int fd;
    net_conn_fn *fn;
    void *arg;
    /* Plain mode. Unread input is in_n bytes at in_p: in the worker's
     * scratch buffer during a read callback, else in ibuf. Output is
     * obuf from ooff on. */
    struct event *rev, *wev;
    const char *in_p;
    size_t in_n;
    struct buf ibuf;
    struct buf obuf;
    size_t ooff;
    bool reading; /* rev is added */
    bool writing; /* wev is added (the socket was full) */
    bool dirty;   /* on net->dirty */
    struct net_conn *dirty_next;
    /* TLS mode: all I/O goes through the bufferevent. */
    struct bufferevent *bev;
    SSL *ssl; /* owned by bev (BEV_OPT_CLOSE_ON_FREE) */
    bool tls_ready;
    unsigned timeout; /* idle timeout, seconds */
};

struct net_timer {
    struct net *net;
    struct event *ev;
    net_timer_fn *fn;
    void *arg;
};

static void net_flush(struct net *n);

const char *
net_event_name(enum net_event ev)
{
    switch (ev) {
    case NET_EV_READ:
        return "read";
    case NET_EV_DRAINED:
        return "drained";
    case NET_EV_TLS_READY:
        return "tls_ready";
    case NET_EV_TIMEOUT:
        return "timeout";
    case NET_EV_EOF:
        return "eof";
    case NET_EV_ERROR:
        return "error";
    }
    return "?";
}

struct net *
net_new(void)
{
    struct net *n = emu_calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->scratch = emu_malloc(READ_CHUNK);
    struct event_config *cfg = n->scratch ? event_config_new() : NULL;
    if (cfg == NULL) {
        emu_free(n->scratch);
        emu_free(n);
        return NULL;
    }
    /* One thread per base: no locking inside libevent is needed. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    n->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (n->base == NULL) {
        emu_free(n->scratch);
        emu_free(n);
        return NULL;
    }
    return n;
}

void
net_free(struct net *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n_signals; i++)
        event_free(n->signals[i].ev);
    event_base_free(n->base);
    emu_free(n->scratch);
    buf_cleanup(&n->spare);
    emu_free(n);
}

int
net_run(struct net *n)
{
    return event_base_dispatch(n->base) < 0 ? -1 : 0;
}

void
net_break(struct net *n)
{
    event_base_loopbreak(n->base);
}

double
net_now(struct net *n)
{
    struct timeval tv;
    event_base_gettimeofday_cached(n->base, &tv);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

struct event_base *
net_base(struct net *n)
{
    return n->base;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct net_signal_slot *slot = arg;
    slot->fn((int)sig, slot->arg);
    net_flush(slot->net);
}

int
net_on_signal(struct net *n, int sig, net_signal_fn *fn, void *arg)
{
    if (n->n_signals == EMU_ARRAY_LEN(n->signals))
        return -1;
    struct net_signal_slot *slot = &n->signals[n->n_signals];
    slot->net = n;
    slot->fn = fn;
    slot->arg = arg;
    slot->ev = evsignal_new(n->base, sig, on_signal, slot);
    if (slot->ev == NULL || evsignal_add(slot->ev, NULL) < 0) {
        if (slot->ev)
            event_free(slot->ev);
        slot->ev = NULL;
        return -1;
    }
    n->n_signals++;
    return 0;
}

void
net_sockaddr_format(const struct sockaddr *sa, char *host, size_t cap,
                    uint16_t *port)
{
    struct ip_addr a;
    memset(&a, 0, sizeof(a));
    *port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        a.family = 4;
        memcpy(a.b, &s4->sin_addr, 4);
        *port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        char tmp[IP_STR_MAX];
        inet_ntop(AF_INET6, &s6->sin6_addr, tmp, sizeof(tmp));
        *port = ntohs(s6->sin6_port);
        if (ip_parse(tmp, strlen(tmp), &a) < 0) {
            str_copy(host, cap, tmp);
            return;
        }
    } else {
        str_copy(host, cap, "unknown");
        return;
    }
    ip_format(&a, host, cap);
}

/* ---- listeners ---- */

static void
on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    (void)ev;
    struct net_listener *l = arg;
    evutil_make_socket_nonblocking(fd);
    int one = 1;
    /* Replies are small and latency matters more than packet count. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct net *n = l->net;
    l->fn(l, fd, sa, (socklen_t)salen, l->arg);
    net_flush(n);
}

static void
on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct net_listener *l = arg;
    evconnlistener_enable(l->ev);
}

static void
on_accept_error(struct evconnlistener *ev, void *arg)
{
    struct net_listener *l = arg;
    /* Out of descriptors or memory: stop accepting for 100 ms instead of
     * spinning on a listener that stays readable. */
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        evconnlistener_disable(ev);
        struct timeval tv = {0, 100000};
        if (l->retry)
            evtimer_add(l->retry, &tv);
    }
}

/* Whether a socket without SO_REUSEPORT can bind ss; if not, errno says
 * why. */
static bool
address_free(const struct sockaddr_storage *ss, socklen_t sl)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    bool ok = bind(fd, (const struct sockaddr *)ss, sl) == 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return ok;
}

struct net_listener *
net_listen(struct net *n, const char *host, uint16_t port, enum net_share share,
           net_accept_fn *fn, void *arg, char *err, size_t errlen)
{
    bool reuseport = share != NET_ALONE;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct ip_addr a;
    if (ip_parse(host, strlen(host), &a) < 0) {
        snprintf(err, errlen, "bad listen address '%s'", host);
        return NULL;
    }
    if (strchr(host, ':') == NULL) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, a.b, 4);
        sl = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, host, &s6->sin6_addr);
        sl = sizeof(*s6);
    }
    int fd =
        socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* SO_REUSEPORT would also let us join another process's listener
     * (one of the same user's, started with --workers too) and share its
     * clients without a word: try the address without it first, so that a
     * port in use is refused as it is without workers. */
    bool taken =
        share == NET_SHARE_FIRST && port != 0 && !address_free(&ss, sl);
    if (taken || bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%u: %s",
                 ss.ss_family == AF_INET6 ? "[" : "", host,
                 ss.ss_family == AF_INET6 ? "]" : "", port, strerror(errno));
        close(fd);
        return NULL;
    }
    /* As deep a queue as the kernel allows (net.core.somaxconn caps it):
     * thousands of clients connecting at once must all get in. */
    if (listen(fd, 4096) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    struct net_listener *l = emu_calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    l->net = n;
    l->fd = fd;
    l->fn = fn;
    l->arg = arg;
    /* Backlog 0: libevent leaves the socket's listen() as it is (-1 would
     * call listen(fd, 128) again, and a burst of clients would lose
     * connections the kernel had already completed). */
    l->ev =
        evconnlistener_new(n->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (l->ev == NULL) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        emu_free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->ev, on_accept_error);
    l->retry = evtimer_new(n->base, on_accept_retry, l);
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    getsockname(fd, (struct sockaddr *)&got, &gl);
    char tmp[IP_STR_MAX];
    net_sockaddr_format((struct sockaddr *)&got, tmp, sizeof(tmp), &l->port);
    return l;
}

uint16_t
net_listener_port(const struct net_listener *l)
{
    return l->port;
}

void
net_listener_set_owned_arg(struct net_listener *l)
{
    l->own_arg = true;
}

void
net_listener_free(struct net_listener *l)
{
    if (l == NULL)
        return;
    if (l->retry)
        event_free(l->retry);
    evconnlistener_free(l->ev);
    if (l->own_arg)
        emu_free(l->arg);
    emu_free(l);
}

/* ---- connections ---- */

static bool
is_plain(const struct net_conn *c)
{
    return c->bev == NULL;
}

static void
mark_dirty(struct net_conn *c)
{
    if (c->dirty || c->writing)
        return;
    c->dirty = true;
    c->dirty_next = c->net->dirty;
    c->net->dirty = c;
}

static void
unmark_dirty(struct net_conn *c)
{
    if (!c->dirty)
        return;
    for (struct net_conn **pp = &c->net->dirty; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    }
    c->dirty = false;
}

/* Write what is buffered. Returns 1 when the buffer is now empty, 0 when
 * the socket is full (the write event takes over), -1 on error. */
static int
try_write(struct net_conn *c)
{
    while (c->ooff < c->obuf.len) {
        ssize_t n = write(c->fd, c->obuf.data + c->ooff, c->obuf.len - c->ooff);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                break;
            return -1;
        }
        if (n == 0)
            break;
        c->ooff += (size_t)n;
    }
    if (c->ooff == c->obuf.len) {
        c->ooff = 0;
        struct buf *sp = &c->net->spare;
        if (c->obuf.cap > OUT_KEEP && c->obuf.cap > sp->cap &&
            c->obuf.cap <= OUT_SPARE) {
            buf_cleanup(sp);
            *sp = c->obuf;
            sp->len = 0;
            sp->data[0] = '\0';
            c->obuf = (struct buf){0};
        }
        buf_reset(&c->obuf, OUT_KEEP);
        if (c->writing) {
            event_del(c->wev);
            c->writing = false;
        }
        return 1;
    }
    if (!c->writing) {
        event_add(c->wev, NULL);
        c->writing = true;
    }
    return 0;
}

/* Flush every connection written to during the last callback. A DRAINED
 * or ERROR callback may write again (or free the connection), so the list
 * is taken one entry at a time until it stays empty. */
static void
net_flush(struct net *n)
{
    while (n->dirty) {
        struct net_conn *c = n->dirty;
        n->dirty = c->dirty_next;
        c->dirty = false;
        int r = try_write(c);
        if (r > 0)
            c->fn(c, NET_EV_DRAINED, c->arg);
        else if (r < 0)
            c->fn(c, NET_EV_ERROR, c->arg);
    }
}

/* Keep the input the session left unread in the connection's own buffer
 * (it was in the worker's scratch buffer), or release that buffer once
 * everything has been read. Returns -1 when memory runs out. */
static int
keep_input(struct net_conn *c)
{
    if (c->in_n == 0) {
        c->in_p = NULL;
        buf_cleanup(&c->ibuf);
        return 0;
    }
    if (c->ibuf.data && c->in_p >= c->ibuf.data &&
        c->in_p < c->ibuf.data + c->ibuf.len)
        return 0; /* already there */
    struct buf b = {0};
    if (buf_append(&b, c->in_p, c->in_n) < 0) {
        c->in_p = NULL; /* the bytes are lost with the connection */
        c->in_n = 0;
        return -1;
    }
    buf_cleanup(&c->ibuf);
    c->ibuf = b;
    c->in_p = c->ibuf.data;
    return 0;
}

/* The idle timeout counts from when we wait for the client again. It was
 * armed when this callback started (with the loop's cached time); a slow
 * callback (a scenario hook that ran long) would otherwise eat into it,
 * and the timeout could fire before the client's next command is read. */
static void
rearm_if_slow(struct net_conn *c)
{
    struct timeval cached, now;
    if (c->timeout == 0 ||
        event_base_gettimeofday_cached(c->net->base, &cached) != 0 ||
        evutil_gettimeofday(&now, NULL) != 0)
        return;
    double spent = (double)(now.tv_sec - cached.tv_sec) +
                   (double)(now.tv_usec - cached.tv_usec) / 1e6;
    if (spent < 0.1)
        return;
    event_base_update_cache_time(c->net->base);
    struct timeval tv = {(time_t)c->timeout, 0};
    if (!is_plain(c))
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    else if (c->reading)
        event_add(c->rev, &tv);
}

static void
on_plain_read(evutil_socket_t fd, short what, void *arg)
{
    struct net_conn *c = arg;
    struct net *n = c->net;
    if (what & EV_TIMEOUT) {
        c->fn(c, NET_EV_TIMEOUT, c->arg);
        net_flush(n);
        return;
    }
    ssize_t r;
    if (c->in_n == 0) {
        /* The common case: nothing left over, read into scratch. */
        r = read(fd, n->scratch, READ_CHUNK);
        if (r > 0) {
            c->in_p = n->scratch;
            c->in_n = (size_t)r;
        }
    } else {
        /* Append to what is left over (a partial line). */
        size_t off = (size_t)(c->in_p - c->ibuf.data);
        if (off > 0) {
            memmove(c->ibuf.data, c->in_p, c->in_n);
            c->ibuf.len = c->in_n;
            c->in_p = c->ibuf.data;
        }
        if (buf_reserve(&c->ibuf, READ_CHUNK) < 0) {
            c->fn(c, NET_EV_ERROR, c->arg);
            net_flush(n);
            return;
        }
        c->in_p = c->ibuf.data;
        r = read(fd, c->ibuf.data + c->ibuf.len, READ_CHUNK);
        if (r > 0) {
            c->ibuf.len += (size_t)r;
            c->in_n += (size_t)r;
        }
    }
    if (r > 0) {
        n->reading = c;
        c->fn(c, NET_EV_READ, c->arg);
        /* The session may have freed the connection (net_conn_free
         * clears n->reading) or switched it to TLS. */
        if (n->reading == c && is_plain(c) && keep_input(c) < 0)
            c->fn(c, NET_EV_ERROR, c->arg);
        else if (n->reading == c)
            rearm_if_slow(c);
        n->reading = NULL;
    } else if (r == 0) {
        /* The peer closed its side: stop watching, tell the session. */
        event_del(c->rev);
        c->reading = false;
        c->fn(c, NET_EV_EOF, c->arg);
    } else {
        int err = errno;
        if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
            event_del(c->rev);
            c->reading = false;
            c->fn(c, NET_EV_ERROR, c->arg);
        }
    }
    net_flush(n);
}

static void
on_plain_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct net_conn *c = arg;
    struct net *n = c->net;
    int r = try_write(c);
    if (r > 0)
        c->fn(c, NET_EV_DRAINED, c->arg);
    else if (r < 0)
        c->fn(c, NET_EV_ERROR, c->arg);
    net_flush(n);
}

/* TLS mode callbacks (bufferevent). */
static void
tls_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct net_conn *c = arg;
    struct net *n = c->net;
    n->reading = c; /* cleared if the session frees the connection */
    c->fn(c, NET_EV_READ, c->arg);
    if (n->reading == c)
        rearm_if_slow(c);
    n->reading = NULL;
    net_flush(n);
}

static void
tls_write_cb(struct bufferevent *bev, void *arg)
{
    struct net_conn *c = arg;
    struct net *n = c->net;
    /* The OpenSSL bufferevent can report a drain while bytes are still
     * queued (a write blocked on a read); users rely on "drained" meaning
     * empty, to close without losing the last reply. */
    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;
    c->fn(c, NET_EV_DRAINED, c->arg);
    net_flush(n);
}

static void
tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct net_conn *c = arg;
    struct net *n = c->net;
    if (what & BEV_EVENT_CONNECTED) {
        c->tls_ready = true;
        c->fn(c, NET_EV_TLS_READY, c->arg);
    } else if (what & BEV_EVENT_TIMEOUT) {
        c->fn(c, NET_EV_TIMEOUT, c->arg);
    } else if (what & BEV_EVENT_EOF) {
        c->fn(c, NET_EV_EOF, c->arg);
    } else {
        c->fn(c, NET_EV_ERROR, c->arg);
    }
    net_flush(n);
}

static struct bufferevent *
tls_bev(struct net *n, int fd, struct net_tls *tls, SSL **out)
{
    SSL *ssl = net_tls_ssl_new(tls);
    if (ssl == NULL)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        n->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* A client that closes without close_notify is common; not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    bufferevent_setcb(bev, tls_read_cb, tls_write_cb, tls_event_cb, NULL);
    *out = ssl;
    return bev;
}

static void
plain_release(struct net_conn *c)
{
    unmark_dirty(c);
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    buf_cleanup(&c->ibuf);
    buf_cleanup(&c->obuf);
    c->in_p = NULL;
    c->in_n = 0;
    c->ooff = 0;
    c->rev = c->wev = NULL;
    c->reading = c->writing = false;
}

struct net_conn *
net_conn_new(struct net *n, int fd, struct net_tls *tls, net_conn_fn *fn,
             void *arg)
{
    struct net_conn *c = emu_calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->net = n;
    c->fd = fd;
    c->fn = fn;
    c->arg = arg;
    if (tls) {
        c->bev = tls_bev(n, fd, tls, &c->ssl);
        if (c->bev == NULL)
            goto fail;
        bufferevent_setcb(c->bev, tls_read_cb, tls_write_cb, tls_event_cb, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        return c;
    }
    c->rev = event_new(n->base, fd, EV_READ | EV_PERSIST, on_plain_read, c);
    c->wev = event_new(n->base, fd, EV_WRITE | EV_PERSIST, on_plain_write, c);
    if (!c->rev || !c->wev || event_add(c->rev, NULL) < 0)
        goto fail;
    c->reading = true;
    return c;
fail:
    plain_release(c);
    close(fd);
    emu_free(c);
    return NULL;
}

void
net_conn_free(struct net_conn *c)
{
    if (c == NULL)
        return;
    if (c->net->reading == c)
        c->net->reading = NULL;
    if (is_plain(c)) {
        plain_release(c);
        close(c->fd);
    } else {
        bufferevent_free(c->bev); /* closes fd and frees SSL */
    }
    emu_free(c);
}

void
net_conn_reset(struct net_conn *c)
{
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    net_conn_free(c);
}

void
net_conn_set_timeout(struct net_conn *c, unsigned seconds)
{
    struct timeval tv = {(time_t)seconds, 0};
    /* Remember it for when reading resumes, and for rearm_if_slow. */
    c->timeout = seconds;
    if (!is_plain(c)) {
        bufferevent_set_timeouts(c->bev, seconds ? &tv : NULL, NULL);
        return;
    }
    if (c->reading)
        event_add(c->rev, seconds ? &tv : NULL);
}

void
net_conn_read_enable(struct net_conn *c, bool on)
{
    if (!is_plain(c)) {
        if (on)
            bufferevent_enable(c->bev, EV_READ);
        else
            bufferevent_disable(c->bev, EV_READ);
        return;
    }
    if (on && !c->reading) {
        struct timeval tv = {(time_t)c->timeout, 0};
        event_add(c->rev, c->timeout ? &tv : NULL);
        c->reading = true;
    } else if (!on && c->reading) {
        event_del(c->rev);
        c->reading = false;
    }
}

int
net_conn_write(struct net_conn *c, const void *p, size_t len)
{
    if (!is_plain(c))
        return bufferevent_write(c->bev, p, len);
    struct buf *o = &c->obuf;
    if (c->ooff > 0 && c->ooff >= o->len / 2) {
        /* A client that reads slowly: drop what has been written before
         * the buffer grows, so it holds no more than twice what waits. */
        memmove(o->data, o->data + c->ooff, o->len - c->ooff);
        o->len -= c->ooff;
        c->ooff = 0;
    }
    struct buf *sp = &c->net->spare;
    if (o->len + len >= o->cap && sp->cap > o->len + len) {
        /* Take the worker's spare instead of growing step by step. */
        struct buf b = *sp;
        *sp = (struct buf){0};
        if (o->len)
            memcpy(b.data, o->data, o->len);
        b.len = o->len;
        b.data[b.len] = '\0';
        buf_cleanup(o);
        *o = b;
    }
    if (buf_append(o, p, len) < 0)
        return -1;
    mark_dirty(c);
    return 0;
}

size_t
net_conn_out_len(struct net_conn *c)
{
    if (is_plain(c))
        return c->obuf.len - c->ooff;
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

size_t
net_conn_in_len(struct net_conn *c)
{
    if (is_plain(c))
        return c->in_n;
    return evbuffer_get_length(bufferevent_get_input(c->bev));
}

long
net_conn_find_lf(struct net_conn *c, size_t max)
{
    if (is_plain(c)) {
        size_t look = max < c->in_n ? max : c->in_n;
        const char *lf = look ? memchr(c->in_p, '\n', look) : NULL;
        return lf ? (long)(lf - c->in_p) : -1;
    }
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v[8];
    size_t off = 0;
    struct evbuffer_ptr start;
    evbuffer_ptr_set(in, &start, 0, EVBUFFER_PTR_SET);
    /* Usually the first chunk holds the whole line. */
    for (;;) {
        int got = evbuffer_peek(in, -1, off ? &start : NULL, v, 8);
        if (got <= 0)
            return -1;
        int use = got < 8 ? got : 8;
        for (int i = 0; i < use; i++) {
            size_t n = v[i].iov_len;
            if (off + n > max)
                n = max - off;
            const char *lf = memchr(v[i].iov_base, '\n', n);
            if (lf)
                return (long)(off + (size_t)(lf - (const char *)v[i].iov_base));
            off += n;
            if (off >= max)
                return -1;
        }
        if (got <= 8)
            return -1;
        if (evbuffer_ptr_set(in, &start, off, EVBUFFER_PTR_SET) < 0)
            return -1;
    }
}

const char *
net_conn_pullup(struct net_conn *c, size_t n)
{
    if (is_plain(c))
        return n == 0 || c->in_n < n ? NULL : c->in_p;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (evbuffer_get_length(in) < n)
        return NULL;
    return (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
}

int
net_conn_peek(struct net_conn *c, struct iovec *v, int max)
{
    if (is_plain(c)) {
        if (c->in_n == 0 || max < 1)
            return 0;
        v[0].iov_base = (void *)c->in_p;
        v[0].iov_len = c->in_n;
        return 1;
    }
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec ev[16];
    if (max > 16)
        max = 16;
    int got = evbuffer_peek(in, -1, NULL, ev, max);
    if (got > max)
        got = max;
    for (int i = 0; i < got; i++) {
        v[i].iov_base = ev[i].iov_base;
        v[i].iov_len = ev[i].iov_len;
    }
    return got < 0 ? 0 : got;
}

void
net_conn_drain(struct net_conn *c, size_t n)
{
    if (!is_plain(c)) {
        evbuffer_drain(bufferevent_get_input(c->bev), n);
        return;
    }
    if (n > c->in_n)
        n = c->in_n;
    c->in_p += n;
    c->in_n -= n;
}

int
net_conn_start_tls(struct net_conn *c, struct net_tls *tls, size_t *discarded)
{
    if (!is_plain(c))
        return -1;
    /* Bytes the client sent after STARTTLS in the clear are thrown away
     * (CVE-2011-0411); any reply not yet written is written first. */
    *discarded = c->in_n;
    while (c->ooff < c->obuf.len) {
        ssize_t w = write(c->fd, c->obuf.data + c->ooff, c->obuf.len - c->ooff);
        if (w <= 0)
            break;
        c->ooff += (size_t)w;
    }
    SSL *ssl;
    struct bufferevent *bev = tls_bev(c->net, c->fd, tls, &ssl);
    if (bev == NULL)
        return -1;
    plain_release(c);
    c->bev = bev;
    c->ssl = ssl;
    bufferevent_setcb(c->bev, tls_read_cb, tls_write_cb, tls_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (c->timeout) {
        struct timeval tv = {(time_t)c->timeout, 0};
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    }
    return 0;
}

bool
net_conn_is_tls(const struct net_conn *c)
{
    return c->ssl != NULL;
}

int
net_conn_tls_info(struct net_conn *c, struct net_tls_info *out)
{
    memset(out, 0, sizeof(*out));
    if (c->ssl == NULL)
        return -1;
    net_tls_describe(c->ssl, out);
    return 0;
}

const char *
net_conn_tls_error(struct net_conn *c, char *buf, size_t cap)
{
    unsigned long e = c->bev ? bufferevent_get_openssl_error(c->bev) : 0;
    if (e == 0) {
        str_copy(buf, cap, "connection closed during handshake");
        return buf;
    }
    ERR_error_string_n(e, buf, cap);
    return buf;
}

int
net_conn_local(struct net_conn *c, struct ip_addr *addr, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    char tmp[IP_STR_MAX];
    net_sockaddr_format((struct sockaddr *)&ss, tmp, sizeof(tmp), port);
    return ip_parse(tmp, strlen(tmp), addr);
}

/* ---- timers ---- */

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct net_timer *t = arg;
    struct net *n = t->net;
    t->fn(t->arg);
    net_flush(n);
}

struct net_timer *
net_timer_new(struct net *n, net_timer_fn *fn, void *arg)
{
    struct net_timer *t = emu_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->net = n;
    t->fn = fn;
    t->arg = arg;
    t->ev = evtimer_new(n->base, on_timer, t);
    if (t->ev == NULL) {
        emu_free(t);
        return NULL;
    }
    return t;
}

void
net_timer_start(struct net_timer *t, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    evtimer_add(t->ev, &tv);
}

void
net_timer_stop(struct net_timer *t)
{
    evtimer_del(t->ev);
}

bool
net_timer_pending(const struct net_timer *t)
{
    return evtimer_pending(t->ev, NULL) != 0;
}

void
net_timer_free(struct net_timer *t)
{
    if (t == NULL)
        return;
    event_free(t->ev);
    emu_free(t);
}
