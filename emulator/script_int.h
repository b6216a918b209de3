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
};

struct script_ud {
    struct script_session *ss;
};

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
