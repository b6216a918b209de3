/*
 * emu.h: struct emu, the one mutable root of the process (created in
 * main.c), and struct worker, one per event-loop thread. Everything shared
 * across workers (config, TLS context, store, metrics, scenario registry)
 * hangs off struct emu and is either immutable after start-up or guarded
 * inside its own module.
 */
#ifndef EMU_EMU_H
#define EMU_EMU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "store.h"
#include "util.h"

struct smtp_session;
struct worker;
struct scenario_set;
struct script_engine;
struct kv;
struct api;
struct state;

/* A listening address as configured, shared by all workers. */
struct listener_spec {
    const struct config_listener *cfg;
    uint16_t port;             /* the bound port (port 0 resolved) */
    char name[IP_STR_MAX + 8]; /* "127.0.0.1:2525" */
};

struct emu {
    const struct config *cfg;
    struct log *log;
    struct net_tls *tls;             /* NULL when no certificate is available */
    struct net_tls_cache *tls_cache; /* scenario-chosen variants */
    struct store store;
    struct metrics metrics;
    char hostname[256];
    char banner[512];
    char base_dir[4096]; /* where scenarios/ and lua/ live */

    struct listener_spec *listeners;
    size_t n_listeners;

    struct worker **workers;
    unsigned n_workers;

    atomic_uint_fast64_t next_session_id;
    atomic_uint active_sessions;
    atomic_bool stopping;
    atomic_uint_fast64_t spool_seq;
    _Atomic double clock_offset; /* scenario clock minus real time */

    struct scenario_set *scenarios; /* issue 4: loaded scenario sources */
    struct kv *kv;                  /* scenario state shared by sessions */
    struct api *api;
};

struct worker {
    struct emu *emu;
    struct net *net;
    unsigned index;
    pthread_t thread;
    struct rng rng;
    struct net_listener **listeners; /* parallel to emu->listeners */
    struct smtp_session *sessions;   /* live sessions, for shutdown */
    unsigned n_sessions;
    struct net_timer *flush_timer;
    struct net_timer *stop_timer;
    struct script_engine *script; /* this worker's Lua state */
    struct state *state;          /* emu.state: memory or Redis */
};

#endif
