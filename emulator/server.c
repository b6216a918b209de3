/*
 * server: workers and listeners. Worker 0 runs on the main thread and owns
 * the signal handlers; other workers (--workers N) run in their own threads
 * with their own event loop and Lua state, accepting on duplicates of the
 * same listening sockets. A 100 ms timer per worker flushes the log and
 * notices a stop request, so no cross-thread wake-up is needed.
 */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "scenario.h"
#include "script.h"
#include "smtp_session.h"
#include "state.h"

struct accept_ctx {
    struct worker *w;
    const struct listener_spec *spec;
};

static void
on_accept(struct net_listener *l, int fd, const struct sockaddr *sa,
          socklen_t salen, void *arg)
{
    (void)l;
    struct accept_ctx *ctx = arg;
    smtp_session_accept(ctx->w, ctx->spec, fd, sa, salen);
}

static struct accept_ctx *
accept_ctx_new(struct worker *w, const struct listener_spec *spec)
{
    struct accept_ctx *c = emu_calloc(1, sizeof(*c));
    if (c) {
        c->w = w;
        c->spec = spec;
    }
    return c;
}

static void worker_stop(struct worker *w);

static void
on_flush(void *arg)
{
    struct worker *w = arg;
    struct emu *e = w->emu;
    if (w->index == 0)
        log_flush(e->log);
    if (atomic_load(&e->stopping)) {
        if (w->listeners[0] != NULL || w->stop_timer == NULL)
            worker_stop(w);
        if (w->n_sessions == 0) {
            net_break(w->net);
            return;
        }
    }
    net_timer_start(w->flush_timer, 0.1);
}

static void
on_grace_over(void *arg)
{
    struct worker *w = arg;
    while (w->sessions)
        smtp_session_abort(w->sessions, "shutdown");
    net_break(w->net);
}

/* Stop accepting, let sessions finish the reply in flight, and give them
 * --shutdown-grace seconds before closing what is left. */
static void
worker_stop(struct worker *w)
{
    struct emu *e = w->emu;
    for (size_t i = 0; i < e->n_listeners; i++) {
        net_listener_free(w->listeners[i]);
        w->listeners[i] = NULL;
    }
    struct smtp_session *s = w->sessions;
    while (s) {
        /* Shutting down may free s: fetch the next one first. */
        struct smtp_session *next = smtp_session_next(s);
        smtp_session_shutdown(s);
        s = next;
    }
    if (w->stop_timer == NULL) {
        w->stop_timer = net_timer_new(w->net, on_grace_over, w);
        if (w->stop_timer)
            net_timer_start(w->stop_timer, e->cfg->shutdown_grace);
    }
    if (w->n_sessions == 0)
        net_break(w->net);
}

static void
on_signal(int sig, void *arg)
{
    struct worker *w = arg;
    struct emu *e = w->emu;
    log_msg(e->log, LOG_LEVEL_INFO, "shutdown", "signal %d received", sig);
    atomic_store(&e->stopping, true);
    worker_stop(w);
}

/* SIGHUP: re-read scenario files; new sessions get the new versions. */
static void
on_hup(int sig, void *arg)
{
    (void)sig;
    struct worker *w = arg;
    int failed = scenario_reload(w->emu);
    log_msg(w->emu->log, failed ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "reload",
            "scenarios reloaded (%d failed to load and kept their previous "
            "version)",
            failed);
}

static struct worker *
worker_new(struct emu *e, unsigned index, char *err, size_t errlen)
{
    struct worker *w = emu_calloc(1, sizeof(*w));
    if (w == NULL)
        goto nomem;
    w->emu = e;
    w->index = index;
    uint64_t seed = e->cfg->seed_set
                        ? e->cfg->seed
                        : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    rng_seed(&w->rng, seed + index * 0x9e3779b97f4a7c15ULL);
    w->net = net_new();
    w->listeners =
        emu_calloc(e->n_listeners ? e->n_listeners : 1, sizeof(*w->listeners));
    if (w->net == NULL || w->listeners == NULL)
        goto nomem;
    w->flush_timer = net_timer_new(w->net, on_flush, w);
    if (w->flush_timer == NULL)
        goto nomem;
    /* Worker 0 keeps the shared clock offset in step with Redis. */
    w->state = state_new(e, w->net, index == 0, err, errlen);
    if (w->state == NULL)
        return w;
    w->script = script_engine_new(e, w, err, errlen);
    if (w->script == NULL && err[0])
        return w; /* caller sees err and frees */
    return w;
nomem:
    snprintf(err, errlen, "out of memory");
    return w;
}

static void
worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    while (w->sessions)
        smtp_session_abort(w->sessions, "exit");
    if (w->listeners && w->emu) {
        for (size_t i = 0; i < w->emu->n_listeners; i++)
            net_listener_free(w->listeners[i]);
    }
    emu_free(w->listeners);
    net_timer_free(w->flush_timer);
    net_timer_free(w->stop_timer);
    /* Before the Lua states: pending Redis callbacks resume coroutines. */
    state_free(w->state);
    w->state = NULL;
    script_engine_free(w->script);
    net_free(w->net);
    emu_free(w);
}

int
server_start(struct emu *e, char *err, size_t errlen)
{
    const struct config *cfg = e->cfg;
    err[0] = '\0';
    e->n_listeners = cfg->n_listeners;
    e->listeners = emu_calloc(cfg->n_listeners, sizeof(*e->listeners));
    e->n_workers = cfg->workers;
    e->workers = emu_calloc(cfg->workers, sizeof(*e->workers));
    if (e->listeners == NULL || e->workers == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < cfg->workers; i++) {
        e->workers[i] = worker_new(e, i, err, errlen);
        if (err[0])
            return -1;
    }
    struct worker *w0 = e->workers[0];
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *cl = &cfg->listeners[i];
        struct listener_spec *spec = &e->listeners[i];
        spec->cfg = cl;
        if (cl->kind == LISTENER_SMTPS && e->tls == NULL) {
            snprintf(err, errlen,
                     "--listen-tls %s:%u needs a TLS certificate: give "
                     "--tls-cert/--tls-key or run certs/gen.sh",
                     cl->host, cl->port);
            return -2;
        }
        struct accept_ctx *ctx = accept_ctx_new(w0, spec);
        if (ctx == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        /* With workers, each has a socket of its own on the same port
         * (SO_REUSEPORT): the kernel spreads connections over their
         * queues, and a connection wakes one loop, not all of them. */
        enum net_share share = cfg->workers > 1 ? NET_SHARE_FIRST : NET_ALONE;
        w0->listeners[i] = net_listen(w0->net, cl->host, cl->port, share,
                                      on_accept, ctx, err, errlen);
        if (w0->listeners[i] == NULL) {
            emu_free(ctx);
            return -1;
        }
        net_listener_set_owned_arg(w0->listeners[i]);
        spec->port = net_listener_port(w0->listeners[i]);
        bool v6 = strchr(cl->host, ':') != NULL;
        snprintf(spec->name, sizeof(spec->name), "%s%s%s:%u", v6 ? "[" : "",
                 cl->host, v6 ? "]" : "", spec->port);
        for (unsigned k = 1; k < cfg->workers; k++) {
            struct worker *w = e->workers[k];
            struct accept_ctx *c2 = accept_ctx_new(w, spec);
            if (c2 == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            /* The port the first one got, when --listen said 0. */
            w->listeners[i] =
                net_listen(w->net, cl->host, spec->port, NET_SHARE_JOIN,
                           on_accept, c2, err, errlen);
            if (w->listeners[i] == NULL) {
                emu_free(c2);
                return -1;
            }
            net_listener_set_owned_arg(w->listeners[i]);
        }
    }
    if (e->cfg->api_enabled && api_start(e, w0->net, err, errlen) < 0)
        return -1;
    if (net_on_signal(w0->net, SIGTERM, on_signal, w0) < 0 ||
        net_on_signal(w0->net, SIGINT, on_signal, w0) < 0 ||
        net_on_signal(w0->net, SIGHUP, on_hup, w0) < 0) {
        snprintf(err, errlen, "cannot install signal handlers");
        return -1;
    }
    return 0;
}

void
server_announce(struct emu *e)
{
    for (size_t i = 0; i < e->n_listeners; i++) {
        const struct listener_spec *spec = &e->listeners[i];
        printf("listening %s %s\n", listener_kind_name(spec->cfg->kind),
               spec->name);
        log_msg(e->log, LOG_LEVEL_INFO, "listening", "%s %s%s",
                listener_kind_name(spec->cfg->kind), spec->name,
                spec->cfg->proxy_protocol ? " (PROXY protocol)" : "");
    }
    if (e->api) {
        bool v6 = strchr(e->cfg->api_host, ':') != NULL;
        printf("listening api %s%s%s:%u\n", v6 ? "[" : "", e->cfg->api_host,
               v6 ? "]" : "", api_port(e));
    }
    fflush(stdout);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    net_timer_start(w->flush_timer, 0.1);
    net_run(w->net);
    return NULL;
}

int
server_run(struct emu *e)
{
    for (unsigned i = 1; i < e->n_workers; i++) {
        struct worker *w = e->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            log_msg(e->log, LOG_LEVEL_ERROR, "worker",
                    "cannot start worker thread %u: %s", i, strerror(errno));
            atomic_store(&e->stopping, true);
            e->n_workers = i;
            break;
        }
    }
    worker_main(e->workers[0]);
    atomic_store(&e->stopping, true);
    api_stop(e);
    for (unsigned i = 1; i < e->n_workers; i++)
        pthread_join(e->workers[i]->thread, NULL);
    return 0;
}

void
server_cleanup(struct emu *e)
{
    if (e->workers) {
        for (unsigned i = 0; i < e->cfg->workers; i++)
            worker_free(e->workers[i]);
    }
    emu_free(e->workers);
    e->workers = NULL;
    emu_free(e->listeners);
    e->listeners = NULL;
}
