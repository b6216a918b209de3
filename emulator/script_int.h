/*
 * script_int.h: what script.c and script_api.c share: the per-state
 * context, the budget the count hook charges, and the session object.
 * Nothing outside the script module includes it.
 */
#ifndef EMU_SCRIPT_INT_H
#define EMU_SCRIPT_INT_H

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

#include "decision.h"
#include "script.h"
#include "util.h"

struct emu;
struct worker;
struct smtp_session;
struct script_inst;

/* What one hook call (or a scenario's top level) may spend. */
struct script_budget {
    uint64_t used;   /* instructions so far */
    uint64_t limit;  /* instructions allowed */
    double deadline; /* CLOCK_MONOTONIC seconds */
    bool tripped;
    struct script_session *ss; /* whose hook this is; NULL at load time */
};

/* One per lua_State: the allocator's accounting and the way back from a
 * lua_State to the emulator. Stored in the registry under CTX_KEY. */
struct script_ctx {
    struct emu *emu;
    struct worker *w;         /* NULL in a check state */
    struct script_inst *inst; /* NULL in a check state */
    size_t mem_used, mem_limit;
    struct script_budget load_budget; /* top-level code of files */
    struct rng rng;                   /* check states only */
    const char *scenario_name;        /* namespace for emu.state */
};

struct script_session;

/* One hook call; kept in the session because it may outlive the C stack
 * that started it (a hook waiting for Redis). */
struct script_call {
    struct script_session *ss;
    enum script_hook hook;
    void (*push_arg)(lua_State *co, struct script_call *c);
    const void *arg; /* stage-specific input */
    size_t arg_len;
    const char *arg2;
    bool can_wait; /* the caller accepts a later answer */
};

/* The answer to an emu.state request a hook waits for. */
struct script_wait {
    bool active; /* the coroutine is suspended on it */
    int op;      /* enum state_op */
    char *err;
    int type; /* enum kv_type */
    double num;
    char *str;
    size_t len;
    bool deleted;
    bool unavailable;  /* err: the store was not reached in time */
    bool store_failed; /* this hook call raised such an error */
};

/* The session as Lua sees it (a full userdata, "emu.session"). The pointer
 * is cleared when the session ends, so a kept reference errors cleanly. */
struct script_session {
    struct script_inst *inst;
    struct smtp_session *s; /* NULL once ended */
    lua_State *co;          /* the session's coroutine, or NULL */
    int ref_co;
    int ref_ud;
    int ref_data;   /* s.data: per-session table */
    int ref_tx;     /* s.tx: per-transaction table */
    int ref_params; /* the instance's parameters (borrowed reference) */
    char *ehlo;
    char *banner;
    struct script_budget budget;
    enum script_hook cur_hook;
    struct script_call call; /* the hook in progress */
    struct decision out;     /* its answer */
    bool pending;            /* suspended, waiting for emu.state */
    bool abandoned;          /* the SMTP session ended meanwhile */
    struct script_wait wait;
};

struct script_ud {
    struct script_session *ss;
};

/* The session that runs the calling coroutine, or NULL (top level). */
struct script_session *script_current(lua_State *L);
/* Resume a coroutine whose emu.state answer has arrived. */
void script_resume(struct script_session *ss);

#define SESSION_MT "emu.session"
#define DECISION_MT "emu.decision"
#define CIDRS_MT "emu.cidrs"
#define CTX_KEY "emu.ctx"

struct script_ctx *script_ctx(lua_State *L);
/* Register the emu library, metatables and sandbox in a fresh state
 * (called in protected mode). */
int script_api_open(lua_State *L);
/* Convert the value at `idx` (nil, a decision table, or a reply string)
 * into `out`; raises a Lua error naming `hook` on anything else. */
void script_api_to_decision(lua_State *L, int idx, const char *hook,
                            struct decision *out);
struct net_tls_info;
/* Push a table describing TLS (nil without TLS). */
void script_api_push_tls(lua_State *L, const struct net_tls_info *t);

#endif
