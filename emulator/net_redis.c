/*
 * net_redis: an asynchronous Redis connection per worker, through hiredis
 * and its libevent adapter, so no call ever blocks the event loop. hiredis
 * 0.14 has no timeouts of its own: each command gets our timer, and a late
 * reply is dropped. A lost or refused connection is retried every second.
 * A host given by name is looked up with libevent's evdns before each
 * attempt (hiredis would call a blocking getaddrinfo), so a compose
 * service's address that changes on restart is followed. evdns takes its
 * nameservers in turn, query by query; in a container, whose resolv.conf
 * lists the network's own DNS (which knows "redis") and then the host's
 * (which answers that no such name exists), that fails half the queries
 * for good. So, as the C library does, we ask the first nameserver only
 * and move to the next when it does not answer.
 * Part of the net module (the only place that sees hiredis and libevent).
 */
#include "net.h"
#include "net_int.h"
#include "util.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As many nameservers as the C library reads (MAXNS). */
#define NR_MAX_NS 3

struct net_redis {
    struct net *net;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool connected;
    char host[256];
    bool by_name;             /* host is a DNS name, not an address */
    struct evdns_base *dns;   /* for by_name */
    char ns[NR_MAX_NS][64];   /* resolv.conf's nameservers, in order */
    unsigned n_ns, cur_ns;    /* how many; the one dns asks */
    struct nr_lookup *lookup; /* in flight, or NULL */
    unsigned attempt;         /* picks among a name's addresses */
    uint16_t port;
    unsigned db;
    double timeout;
    struct event *retry;
    net_redis_state_fn *on_state;
    void *state_arg;
    unsigned pending; /* commands in flight (freed contexts wait) */
    bool closing;
};

struct nr_req {
    struct net_redis *r;
    net_redis_fn *fn;
    void *arg;
    struct event *timer;
    int refs;  /* hiredis's callback and our timer each hold one */
    bool done; /* fn has been called */
};

static void nr_connect(struct net_redis *r);
static void use_nameserver(struct net_redis *r, unsigned i);
static void connect_to(struct net_redis *r, const char *addr);

/* One evdns lookup; outlives its net_redis when that is freed meanwhile
 * (r is then NULL and the answer is dropped). */
struct nr_lookup {
    struct net_redis *r;
    struct evdns_getaddrinfo_request *req;
};

static void
req_unref(struct nr_req *q)
{
    if (--q->refs > 0)
        return;
    if (q->timer)
        event_free(q->timer);
    emu_free(q);
}

static void
finish(struct nr_req *q, const struct net_redis_reply *rep, const char *err)
{
    if (q->done)
        return;
    q->done = true;
    q->fn(rep, err, q->arg);
}

/* Convert one hiredis reply (arrays one level deep). */
static void
convert(const redisReply *in, struct net_redis_reply *out,
        struct net_redis_reply *elems, size_t max)
{
    memset(out, 0, sizeof(*out));
    switch (in->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        out->type = NR_STRING;
        out->str = in->str;
        out->len = in->len;
        break;
    case REDIS_REPLY_INTEGER:
        out->type = NR_INTEGER;
        out->integer = in->integer;
        break;
    case REDIS_REPLY_ERROR:
        out->type = NR_ERROR;
        out->str = in->str;
        out->len = in->len;
        break;
    case REDIS_REPLY_ARRAY:
        out->type = NR_ARRAY;
        out->elems = elems;
        for (size_t i = 0; elems && i < in->elements && i < max; i++) {
            convert(in->element[i], &elems[i], NULL, 0);
            out->n++;
        }
        break;
    default:
        out->type = NR_NIL;
        break;
    }
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct nr_req *q = privdata;
    q->r->pending--;
    if (q->timer && evtimer_pending(q->timer, NULL)) {
        /* Answered in time: the timer's reference goes too. */
        event_del(q->timer);
        q->refs--;
    }
    if (reply == NULL) {
        finish(q, NULL, "connection to Redis lost");
    } else {
        const redisReply *rr = reply;
        struct net_redis_reply out;
        struct net_redis_reply *elems = NULL;
        if (rr->type == REDIS_REPLY_ARRAY && rr->elements)
            elems = emu_calloc(rr->elements, sizeof(*elems));
        convert(rr, &out, elems, elems ? rr->elements : 0);
        if (out.type == NR_ERROR) {
            char msg[256];
            snprintf(msg, sizeof(msg), "Redis: %.*s", (int)out.len, out.str);
            finish(q, &out, msg);
        } else {
            finish(q, &out, NULL);
        }
        emu_free(elems);
    }
    req_unref(q);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct nr_req *q = arg;
    finish(q, NULL, "Redis did not answer in time");
    req_unref(q);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct net_redis *r = arg;
    nr_connect(r);
}

static void
schedule_retry(struct net_redis *r)
{
    if (r->closing)
        return;
    struct timeval tv = {1, 0};
    evtimer_add(r->retry, &tv);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct net_redis *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        r->ac = NULL;
        r->connected = false;
        if (r->on_state)
            r->on_state(false, ac->errstr, r->state_arg);
        schedule_retry(r);
        return;
    }
    r->connected = true;
    if (r->on_state)
        r->on_state(true, NULL, r->state_arg);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct net_redis *r = ac->data;
    r->ac = NULL;
    r->connected = false;
    if (r->on_state && !r->closing)
        r->on_state(false, ac->errstr[0] ? ac->errstr : "disconnected",
                    r->state_arg);
    schedule_retry(r);
}

/* The hosts file, search domains and options (ndots, timeout, attempts)
 * from resolv.conf through evdns; its nameservers read here, kept in order
 * (an address may carry a port, "127.0.0.1:5353", as evdns allows). With
 * none listed, the local one, as the C library does. */
static bool
dns_setup(struct net_redis *r)
{
    const char *path = getenv("SMTP_EMULATOR_RESOLV_CONF");
    if (path == NULL || path[0] == '\0')
        path = "/etc/resolv.conf";
    r->dns = evdns_base_new(net_base(r->net), 0);
    if (r->dns == NULL)
        return false;
    /* A missing file leaves evdns's defaults, as it would with it. */
    (void)evdns_base_resolv_conf_parse(
        r->dns, DNS_OPTION_SEARCH | DNS_OPTION_MISC | DNS_OPTION_HOSTSFILE,
        path);
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && r->n_ns < NR_MAX_NS && fgets(line, sizeof(line), f)) {
        char word[16], addr[64];
        if (sscanf(line, " %15s %63s", word, addr) == 2 &&
            strcmp(word, "nameserver") == 0)
            str_copy(r->ns[r->n_ns++], sizeof(r->ns[0]), addr);
    }
    if (f)
        fclose(f);
    if (r->n_ns == 0)
        str_copy(r->ns[r->n_ns++], sizeof(r->ns[0]), "127.0.0.1");
    use_nameserver(r, 0);
    return true;
}

/* Let evdns ask nameserver i (mod how many) and no other; one evdns
 * cannot take (a link-local scope, say) is passed over. */
static void
use_nameserver(struct net_redis *r, unsigned i)
{
    evdns_base_clear_nameservers_and_suspend(r->dns);
    for (unsigned k = 0; k < r->n_ns; k++) {
        r->cur_ns = (i + k) % r->n_ns;
        if (evdns_base_nameserver_ip_add(r->dns, r->ns[r->cur_ns]) == 0)
            break;
        if (k + 1 == r->n_ns)
            (void)evdns_base_nameserver_ip_add(r->dns, "127.0.0.1");
    }
    evdns_base_resume(r->dns);
}

static void
on_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct nr_lookup *l = arg;
    struct net_redis *r = l->r;
    char addr[INET6_ADDRSTRLEN] = "";
    /* "localhost" may give ::1 and 127.0.0.1 while Redis listens on one:
     * successive attempts take successive addresses. */
    unsigned n = 0;
    for (struct evutil_addrinfo *x = err == 0 ? ai : NULL; x; x = x->ai_next)
        n++;
    struct evutil_addrinfo *pick = n ? ai : NULL;
    for (unsigned i = 0; pick && r && i < (r->attempt - 1) % n; i++)
        pick = pick->ai_next;
    if (pick) {
        const void *p =
            pick->ai_family == AF_INET6
                ? (const void *)&((struct sockaddr_in6 *)pick->ai_addr)
                      ->sin6_addr
                : (const void *)&((struct sockaddr_in *)pick->ai_addr)
                      ->sin_addr;
        evutil_inet_ntop(pick->ai_family, p, addr, sizeof(addr));
    }
    if (ai)
        evutil_freeaddrinfo(ai);
    emu_free(l);
    if (r == NULL)
        return; /* freed meanwhile */
    r->lookup = NULL;
    if (addr[0] == '\0') {
        /* No answer, rather than "no such name": the next one is asked
         * from the next attempt on. */
        if (err != 0 && err != EVUTIL_EAI_NONAME && err != EVUTIL_EAI_CANCEL)
            use_nameserver(r, r->cur_ns + 1);
        if (r->on_state)
            r->on_state(false,
                        err ? evutil_gai_strerror(err) : "no address found",
                        r->state_arg);
        schedule_retry(r);
        return;
    }
    connect_to(r, addr);
}

static void
nr_connect(struct net_redis *r)
{
    if (r->ac || r->closing || r->lookup)
        return;
    if (!r->by_name) {
        connect_to(r, r->host);
        return;
    }
    struct nr_lookup *l = emu_calloc(1, sizeof(*l));
    if (l == NULL) {
        schedule_retry(r);
        return;
    }
    l->r = r;
    r->lookup = l;
    r->attempt++;
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* May answer at once (the hosts file), calling on_resolved first. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(r->dns, r->host, NULL, &hints, on_resolved, l);
    if (r->lookup == l)
        l->req = req;
}

static void
connect_to(struct net_redis *r, const char *addr)
{
    redisAsyncContext *ac = redisAsyncConnect(addr, r->port);
    if (ac == NULL || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    ac->data = r;
    if (redisLibeventAttach(ac, net_base(r->net)) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    if (r->db) {
        char db[16];
        snprintf(db, sizeof(db), "%u", r->db);
        redisAsyncCommand(ac, NULL, NULL, "SELECT %s", db);
    }
}

struct net_redis *
net_redis_new(struct net *n, const char *host, uint16_t port, unsigned db,
              double timeout, net_redis_state_fn *on_state, void *arg)
{
    struct net_redis *r = emu_calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->net = n;
    str_copy(r->host, sizeof(r->host), host);
    unsigned char a[16];
    r->by_name =
        inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1;
    r->port = port;
    r->db = db;
    r->timeout = timeout;
    r->on_state = on_state;
    r->state_arg = arg;
    r->retry = evtimer_new(net_base(n), on_retry, r);
    if (r->retry == NULL || (r->by_name && !dns_setup(r))) {
        if (r->retry)
            event_free(r->retry);
        emu_free(r);
        return NULL;
    }
    nr_connect(r);
    return r;
}

bool
net_redis_connected(const struct net_redis *r)
{
    return r->connected;
}

int
net_redis_command(struct net_redis *r, net_redis_fn *fn, void *arg, int argc,
                  const char **argv, const size_t *lens)
{
    if (!r->connected || r->ac == NULL) {
        fn(NULL, "not connected to Redis", arg);
        return 1;
    }
    struct nr_req *q = emu_calloc(1, sizeof(*q));
    if (q == NULL) {
        fn(NULL, "out of memory", arg);
        return 1;
    }
    q->r = r;
    q->fn = fn;
    q->arg = arg;
    q->refs = 2;
    q->timer = evtimer_new(net_base(r->net), on_timeout, q);
    if (q->timer == NULL || redisAsyncCommandArgv(r->ac, on_reply, q, argc,
                                                  argv, lens) != REDIS_OK) {
        if (q->timer)
            event_free(q->timer);
        emu_free(q);
        fn(NULL, "cannot send to Redis", arg);
        return 1;
    }
    r->pending++;
    struct timeval tv;
    tv.tv_sec = (time_t)r->timeout;
    tv.tv_usec = (suseconds_t)((r->timeout - (double)tv.tv_sec) * 1e6);
    evtimer_add(q->timer, &tv);
    return 0;
}

void
net_redis_free(struct net_redis *r)
{
    if (r == NULL)
        return;
    r->closing = true;
    if (r->lookup) {
        /* Its callback still runs (with a cancel error) and frees it. */
        struct nr_lookup *l = r->lookup;
        r->lookup = NULL;
        l->r = NULL;
        if (l->req)
            evdns_getaddrinfo_cancel(l->req);
    }
    if (r->dns)
        evdns_base_free(r->dns, 1);
    if (r->ac) {
        /* Callbacks of commands in flight run now, with NULL replies. */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    event_free(r->retry);
    emu_free(r);
}
