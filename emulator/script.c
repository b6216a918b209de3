/*
 * script: Lua state lifecycle, the memory-capped allocator, the
 * instruction-budget hook, loading scenarios into a sandbox, and
 * script_call: the one way C calls a scenario hook. Each scenario
 * configuration gets its own lua_State per worker (so a memory bomb in one
 * cannot starve another, and the cap is per loaded scenario); each session
 * runs its hooks in its own coroutine. Errors, blown budgets and the memory
 * cap turn into "451 4.3.0 Error: internal scenario error" for that session
 * alone; its coroutine is discarded and the next hook gets a fresh one.
 */
#include "script.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu.h"
#include "reply.h"
#include "scenario.h"
#include "script_int.h"
#include "smtp_parse.h"
#include "smtp_session.h"

/* Instructions between two budget checks. */
#define HOOK_STEP 1000
/* Wall-clock budget of one hook call or top-level chunk. */
#define WALL_BUDGET 2.0

static const char *const hook_names[HOOK_COUNT] = {
    "on_connect", "on_ehlo",       "on_starttls", "on_auth",
    "on_mail",    "on_rcpt",       "on_data",     "on_message",
    "on_quit",    "on_disconnect", "on_command",  "on_tls",
};

const char *
script_hook_name(enum script_hook h)
{
    switch (h) {
    case HOOK_CONNECT:
    case HOOK_EHLO:
    case HOOK_STARTTLS:
    case HOOK_AUTH:
    case HOOK_MAIL:
    case HOOK_RCPT:
    case HOOK_DATA:
    case HOOK_MESSAGE:
    case HOOK_QUIT:
    case HOOK_DISCONNECT:
    case HOOK_COMMAND:
    case HOOK_TLS:
        return hook_names[h];
    case HOOK_COUNT:
        break;
    }
    return "?";
}

struct script_inst {
    struct script_engine *se;
    struct script_ctx ctx;
    lua_State *L;
    uint64_t id;
    char *name; /* the scenario's declared name */
    int refs;   /* sessions using it, plus one while current */
    int ref_params;
    int ref_hooks[HOOK_COUNT];
    struct script_inst *next;
};

struct script_engine {
    struct emu *emu;
    struct worker *w;
    struct script_inst *insts;
    struct script_inst **slot; /* per listener: the current instance */
    size_t n_slots;
};

/* ------------------------------------------------------------------ */
/* Allocator, budget, context                                          */

static double
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Charge every growing allocation against the state's cap (HAProxy's
 * hlua_alloc idea). Frees and shrinks always succeed: Lua relies on it. */
static void *
l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct script_ctx *c = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        c->mem_used -= old;
        return NULL;
    }
    if (nsize > old && c->mem_used + (nsize - old) > c->mem_limit)
        return NULL;
    void *n = realloc(ptr, nsize);
    if (n == NULL)
        return nsize > old ? NULL : ptr;
    c->mem_used = c->mem_used - old + nsize;
    return n;
}

struct script_ctx *
script_ctx(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
    struct script_ctx *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return c;
}

static void
budget_start(struct script_budget *b, uint64_t limit)
{
    b->used = 0;
    b->limit = limit;
    b->deadline = mono_now() + WALL_BUDGET;
    b->tripped = false;
}

/* The count hook. Once over budget it re-arms itself to fire on every
 * instruction, so a pcall in the scenario cannot swallow the limit (the
 * trick Redis uses for scripts that run too long). */
static void
l_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct script_budget *b = *(struct script_budget **)lua_getextraspace(L);
    if (b == NULL)
        return;
    if (!b->tripped) {
        b->used += HOOK_STEP;
        if (b->used <= b->limit && mono_now() <= b->deadline)
            return;
        b->tripped = true;
        lua_sethook(L, l_hook, LUA_MASKCOUNT, 1);
    }
    /* Level 0 inside a hook is the interrupted function: its file and
     * line tell the user where the loop is. */
    luaL_where(L, 0);
    lua_pushfstring(L, "scenario ran too long (budget %I instructions, %d s)",
                    (lua_Integer)b->limit, (int)WALL_BUDGET);
    lua_concat(L, 2);
    lua_error(L);
}

static void
set_budget(lua_State *L, struct script_budget *b, uint64_t limit)
{
    budget_start(b, limit);
    *(struct script_budget **)lua_getextraspace(L) = b;
    lua_sethook(L, l_hook, LUA_MASKCOUNT, HOOK_STEP);
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

/* Chunk names are shown relative to the base directory when possible. */
static void
chunk_name(const struct emu *e, const char *path, char *out, size_t cap)
{
    size_t bl = strlen(e->base_dir);
    if (bl && strncmp(path, e->base_dir, bl) == 0 && path[bl] == '/')
        path += bl + 1;
    snprintf(out, cap, "@%s", path);
}

struct load_args {
    const char *path;
    const char *text;
    size_t len;
    const char *const *keys;
    const char *const *vals;
    size_t n;
    struct scenario_info *info; /* may be NULL */
    struct script_inst *inst;   /* may be NULL */
};

/* Copy a string field of the table at `idx` into a fixed buffer. */
static void
field_str(lua_State *L, int idx, const char *k, char *out, size_t cap)
{
    lua_getfield(L, idx, k);
    const char *s = lua_tostring(L, -1);
    str_copy(out, cap, s ? s : "");
    lua_pop(L, 1);
}

static void
fill_info(lua_State *L, int scen, struct scenario_info *info)
{
    field_str(L, scen, "name", info->name, sizeof(info->name));
    field_str(L, scen, "description", info->description,
              sizeof(info->description));
    field_str(L, scen, "replies", info->replies, sizeof(info->replies));
    /* emu._describe_params(spec) returns {name, type, default, help,
     * choices} rows sorted by name. */
    lua_getfield(L, LUA_REGISTRYINDEX, "emu.api");
    lua_getfield(L, -1, "_describe_params");
    lua_getfield(L, scen, "params");
    lua_call(L, 1, 1);
    int rows = lua_gettop(L);
    info->n_params = 0;
    for (lua_Integer i = 1;; i++) {
        if (lua_geti(L, rows, i) != LUA_TTABLE ||
            info->n_params == EMU_ARRAY_LEN(info->params)) {
            lua_pop(L, 1);
            break;
        }
        struct scenario_param_info *p = &info->params[info->n_params++];
        int row = lua_gettop(L);
        field_str(L, row, "name", p->name, sizeof(p->name));
        field_str(L, row, "type", p->type, sizeof(p->type));
        field_str(L, row, "default", p->def, sizeof(p->def));
        field_str(L, row, "help", p->help, sizeof(p->help));
        field_str(L, row, "choices", p->choices, sizeof(p->choices));
        lua_pop(L, 1);
    }
    lua_pop(L, 2); /* rows, emu */
}

/* Protected: set up the state and load one scenario into it. */
static int
load_protected(lua_State *L)
{
    struct load_args *a = lua_touserdata(L, 1);
    struct script_ctx *c = script_ctx(L);
    char cn[4200];

    script_api_open(L); /* libraries, emu, sandbox, prelude */
    chunk_name(c->emu, a->path, cn, sizeof(cn));
    if (luaL_loadbufferx(L, a->text, a->len, cn, "t") != LUA_OK)
        return lua_error(L);
    /* The scenario's own _ENV: reads fall through to the frozen library,
     * writes raise (state belongs in s.data or emu.state). */
    lua_getfield(L, LUA_REGISTRYINDEX, "emu.api");
    lua_getfield(L, -1, "_sandbox");
    lua_pushstring(L, cn + 1);
    lua_call(L, 1, 1);
    lua_setupvalue(L, -3, 1);
    lua_pop(L, 1); /* emu */
    set_budget(L, &c->load_budget, c->emu->cfg->lua_instr_limit);
    lua_call(L, 0, 1);
    *(struct script_budget **)lua_getextraspace(L) = NULL;
    lua_sethook(L, NULL, 0, 0);
    int scen = lua_gettop(L);

    /* Check the table's shape and build the parameters. */
    lua_getfield(L, LUA_REGISTRYINDEX, "emu.api");
    lua_getfield(L, -1, "_check_scenario");
    lua_pushvalue(L, scen);
    lua_pushstring(L, cn + 1);
    lua_call(L, 2, 0);
    lua_getfield(L, -1, "_params_for");
    lua_pushvalue(L, scen);
    lua_createtable(L, 0, (int)a->n);
    for (size_t i = 0; i < a->n; i++) {
        lua_pushstring(L, a->vals[i]);
        lua_setfield(L, -2, a->keys[i]);
    }
    /* The scenario's check(p) is its code too: same budget as the top
     * level, so a loop in it cannot hang the start or the API. */
    set_budget(L, &c->load_budget, c->emu->cfg->lua_instr_limit);
    lua_call(L, 2, 1);
    *(struct script_budget **)lua_getextraspace(L) = NULL;
    lua_sethook(L, NULL, 0, 0);
    int params = lua_gettop(L);
    if (a->info)
        fill_info(L, scen, a->info);
    if (a->inst) {
        struct script_inst *in = a->inst;
        lua_getfield(L, scen, "name");
        const char *nm = lua_tostring(L, -1);
        in->name = emu_strdup(nm ? nm : "?");
        lua_pop(L, 1);
        if (in->name == NULL)
            return luaL_error(L, "not enough memory");
        c->scenario_name = in->name;
        for (int h = 0; h < HOOK_COUNT; h++) {
            lua_getfield(L, scen, hook_names[h]);
            if (lua_isfunction(L, -1))
                in->ref_hooks[h] = luaL_ref(L, LUA_REGISTRYINDEX);
            else
                lua_pop(L, 1);
        }
        lua_pushvalue(L, params);
        in->ref_params = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

static int
msg_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static lua_State *
state_new(struct script_ctx *c, struct emu *e)
{
    c->emu = e;
    c->mem_limit = (size_t)e->cfg->lua_mem_limit;
    lua_State *L = lua_newstate(l_alloc, c);
    if (L == NULL)
        return NULL;
    lua_pushlightuserdata(L, c);
    lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY);
    /* Most objects a hook makes die young. */
    lua_gc(L, LUA_GCGEN, 0, 0);
    return L;
}

/* Run load_protected; on error copy "file:line: message" (first line of
 * the traceback) to err. */
static int
load_into(lua_State *L, struct load_args *a, char *err, size_t errlen)
{
    lua_pushcfunction(L, msg_handler);
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, a);
    int rc = lua_pcall(L, 1, 0, -3);
    if (rc != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        if (rc == LUA_ERRMEM || m == NULL)
            m = "not enough memory";
        size_t n = strcspn(m, "\n");
        snprintf(err, errlen, "%.*s", (int)n, m);
        lua_settop(L, 0);
        return -1;
    }
    lua_settop(L, 0);
    return 0;
}

int
script_check(struct emu *e, const char *path, const char *text, size_t len,
             const char *const *keys, const char *const *vals, size_t n,
             struct scenario_info *info, char *err, size_t errlen)
{
    struct script_ctx *c = emu_calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rng_seed(&c->rng, e->cfg->seed);
    lua_State *L = state_new(c, e);
    if (L == NULL) {
        emu_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct load_args a = {path, text, len, keys, vals, n, info, NULL};
    int rc = load_into(L, &a, err, errlen);
    lua_close(L);
    emu_free(c);
    return rc;
}

static void
inst_free(struct script_inst *in)
{
    if (in == NULL)
        return;
    if (in->L)
        lua_close(in->L);
    emu_free(in->name);
    emu_free(in);
}

static struct script_inst *
inst_new(struct script_engine *se, const struct scenario_load *ld, char *err,
         size_t errlen)
{
    struct script_inst *in = emu_calloc(1, sizeof(*in));
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->se = se;
    in->id = ld->id;
    in->ref_params = LUA_NOREF;
    for (int h = 0; h < HOOK_COUNT; h++)
        in->ref_hooks[h] = LUA_NOREF;
    in->ctx.w = se->w;
    in->ctx.inst = in;
    in->L = state_new(&in->ctx, se->emu);
    if (in->L == NULL) {
        snprintf(err, errlen, "out of memory");
        emu_free(in);
        return NULL;
    }
    struct load_args a = {ld->path,
                          ld->text,
                          ld->len,
                          (const char *const *)ld->keys,
                          (const char *const *)ld->vals,
                          ld->n,
                          NULL,
                          in};
    if (load_into(in->L, &a, err, errlen) < 0) {
        inst_free(in);
        return NULL;
    }
    return in;
}

/* Drop instances no listener selects and no session uses. */
static void
inst_gc(struct script_engine *se)
{
    struct script_inst **pp = &se->insts;
    while (*pp) {
        struct script_inst *in = *pp;
        if (in->refs == 0) {
            *pp = in->next;
            inst_free(in);
        } else {
            pp = &in->next;
        }
    }
}

static void
inst_release(struct script_inst *in)
{
    if (--in->refs == 0)
        inst_gc(in->se);
}

/* The instance for listener `i`, loading the current selection when it
 * changed (an API switch or a reload). */
static struct script_inst *
slot_inst(struct script_engine *se, size_t i)
{
    struct emu *e = se->emu;
    uint64_t id = scenario_current(e, i, NULL);
    struct script_inst *cur = i < se->n_slots ? se->slot[i] : NULL;
    if (cur && cur->id == id)
        return cur;
    for (struct script_inst *in = se->insts; in; in = in->next) {
        if (in->id == id && id != 0) {
            in->refs++;
            if (cur)
                inst_release(cur);
            se->slot[i] = in;
            return in;
        }
    }
    struct scenario_load ld;
    if (scenario_current(e, i, &ld) == 0)
        return cur;
    char err[512];
    struct script_inst *in = inst_new(se, &ld, err, sizeof(err));
    if (in == NULL) {
        log_msg(e->log, LOG_LEVEL_ERROR, "script-error",
                "cannot load scenario '%s': %s", ld.name, err);
        scenario_load_free(&ld);
        return cur; /* keep serving with the previous one */
    }
    scenario_load_free(&ld);
    in->refs = 1;
    in->next = se->insts;
    se->insts = in;
    if (cur)
        inst_release(cur);
    se->slot[i] = in;
    return in;
}

struct script_engine *
script_engine_new(struct emu *e, struct worker *w, char *err, size_t errlen)
{
    err[0] = '\0';
    if (e->scenarios == NULL)
        return NULL;
    struct script_engine *se = emu_calloc(1, sizeof(*se));
    if (se == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    se->emu = e;
    se->w = w;
    se->n_slots = e->cfg->n_listeners;
    se->slot = emu_calloc(se->n_slots ? se->n_slots : 1, sizeof(*se->slot));
    if (se->slot == NULL) {
        emu_free(se);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* Load every listener's scenario now, so a failure shows at start. */
    for (size_t i = 0; i < se->n_slots; i++) {
        if (slot_inst(se, i) == NULL) {
            snprintf(err, errlen, "cannot load the scenario of listener %zu",
                     i);
            script_engine_free(se);
            return NULL;
        }
    }
    return se;
}

void
script_engine_free(struct script_engine *se)
{
    if (se == NULL)
        return;
    while (se->insts) {
        struct script_inst *in = se->insts;
        se->insts = in->next;
        inst_free(in);
    }
    emu_free(se->slot);
    emu_free(se);
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

static int
session_setup(lua_State *L)
{
    struct script_session *ss = lua_touserdata(L, 1);
    struct script_ud *ud = lua_newuserdatauv(L, sizeof(*ud), 0);
    ud->ss = ss;
    luaL_setmetatable(L, SESSION_MT);
    ss->ref_ud = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

struct script_session *
script_session_new(struct script_engine *se, struct smtp_session *s,
                   size_t listener)
{
    if (se == NULL)
        return NULL;
    struct script_inst *in = slot_inst(se, listener);
    if (in == NULL)
        return NULL;
    struct script_session *ss = emu_calloc(1, sizeof(*ss));
    if (ss == NULL)
        return NULL;
    ss->inst = in;
    ss->s = s;
    ss->ref_co = ss->ref_ud = ss->ref_data = ss->ref_tx = LUA_NOREF;
    ss->ref_params = in->ref_params;
    lua_State *L = in->L;
    lua_pushcfunction(L, session_setup);
    lua_pushlightuserdata(L, ss);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_settop(L, 0);
        emu_free(ss);
        return NULL;
    }
    in->refs++;
    return ss;
}

const char *
script_session_scenario(const struct script_session *ss)
{
    return ss->inst->name;
}

int
script_has_hook(const struct script_session *ss, enum script_hook h)
{
    return ss && ss->inst->ref_hooks[h] != LUA_NOREF;
}

const char *
script_ehlo_keywords(const struct script_session *ss)
{
    return ss ? ss->ehlo : NULL;
}

const char *
script_banner(const struct script_session *ss)
{
    return ss ? ss->banner : NULL;
}

static void
drop_thread(struct script_session *ss)
{
    if (ss->ref_co != LUA_NOREF) {
        lua_State *L = ss->inst->L;
        luaL_unref(L, LUA_REGISTRYINDEX, ss->ref_co);
        ss->ref_co = LUA_NOREF;
        ss->co = NULL;
    }
}

static int
call_k(lua_State *co, int status, lua_KContext ctx)
{
    (void)status;
    struct script_call *c = (struct script_call *)ctx;
    script_api_to_decision(co, -1, hook_names[c->hook], &c->ss->out);
    return 0;
}

/* Runs inside the coroutine, so that building arguments and converting
 * the result are protected too (a memory error there is a scenario error,
 * not a panic). */
static int
call_trampoline(lua_State *co)
{
    struct script_call *c = lua_touserdata(co, 1);
    lua_settop(co, 0);
    struct script_session *ss = c->ss;
    lua_rawgeti(co, LUA_REGISTRYINDEX, ss->inst->ref_hooks[c->hook]);
    lua_rawgeti(co, LUA_REGISTRYINDEX, ss->ref_ud);
    if (c->push_arg)
        c->push_arg(co, c);
    else
        lua_pushnil(co);
    lua_rawgeti(co, LUA_REGISTRYINDEX, ss->inst->ref_params);
    lua_callk(co, 3, 1, (lua_KContext)c, call_k);
    return call_k(co, LUA_OK, (lua_KContext)c);
}

static int
traceback_protected(lua_State *L)
{
    lua_State *co = lua_touserdata(L, 1);
    struct buf *out = lua_touserdata(L, 2);
    const char *msg = lua_tostring(co, -1);
    if (msg == NULL)
        msg = "(error object is not a string)";
    luaL_traceback(L, co, msg, 0);
    size_t n;
    const char *t = lua_tolstring(L, -1, &n);
    buf_append(out, t, n);
    return 0;
}

/* The hook failed because emu.state's store (Redis) was unreachable or too
 * slow: answer as Postfix does when a lookup table fails, naming what was
 * being looked up ("451 4.3.0 <rcpt@example.com>: Temporary lookup
 * failure"), and go on with the session. */
static void
lookup_failure(struct script_session *ss, const char *hook,
               struct decision *out)
{
    lua_State *co = ss->co;
    const char *err = lua_tostring(co, -1);
    struct session_view v;
    smtp_session_view(ss->s, &v);
    struct log_kv kv[] = {LOG_KV("scenario", ss->inst->name),
                          LOG_KV("hook", hook), LOG_KV("err", err ? err : "?")};
    smtp_session_log(ss->s, LOG_LEVEL_ERROR, "state-unavailable", kv, 3);
    drop_thread(ss);
    decision_cleanup(out);
    decision_init(out);
    out->kind = DECIDE_REPLY;
    struct buf *b = &out->reply;
    buf_append_str(b, "451 4.3.0 <");
    if ((ss->call.hook == HOOK_MAIL || ss->call.hook == HOOK_RCPT) && v.env)
        buf_append(b, v.env->path.addr, v.env->path.addr_len);
    else if (ss->call.hook == HOOK_EHLO && v.cmd)
        buf_append(b, v.cmd->args, v.cmd->args_len);
    else
        buf_printf(b, "%s[%s]", v.client_name, v.client_ip);
    buf_append_str(b, ">: Temporary lookup failure");
}

static void
report_error(struct script_session *ss, int status, const char *hook,
             struct decision *out)
{
    if (ss->wait.store_failed && status == LUA_ERRRUN && ss->s &&
        !ss->abandoned) {
        lookup_failure(ss, hook, out);
        return;
    }
    lua_State *L = ss->inst->L;
    struct emu *e = ss->inst->se->emu;
    struct buf tb = {0};
    lua_pushcfunction(L, traceback_protected);
    lua_pushlightuserdata(L, ss->co);
    lua_pushlightuserdata(L, &tb);
    if (status == LUA_ERRMEM || lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_settop(L, 0);
        buf_cleanup(&tb);
        buf_append_str(&tb, status == LUA_ERRMEM
                                ? "not enough memory (scenario memory cap)"
                                : "error (no traceback)");
    }
    metrics_inc(&e->metrics.scenario_errors);
    if (ss->s && !ss->abandoned) {
        struct log_kv kv[] = {LOG_KV("scenario", ss->inst->name),
                              LOG_KV("hook", hook),
                              LOG_KVN("err", tb.data ? tb.data : "", tb.len)};
        smtp_session_log(ss->s, LOG_LEVEL_ERROR, "script-error", kv, 3);
    }
    buf_cleanup(&tb);
    drop_thread(ss);
    if (status == LUA_ERRMEM)
        lua_gc(L, LUA_GCCOLLECT);
    decision_cleanup(out);
    decision_init(out);
    out->kind = DECIDE_REPLY;
    buf_append_str(&out->reply, "451 4.3.0 Error: internal scenario error");
}

/* A new coroutine for the session (protected: it allocates). */
static int
thread_protected(lua_State *L)
{
    struct script_session *ss = lua_touserdata(L, 1);
    lua_State *co = lua_newthread(L);
    ss->ref_co = luaL_ref(L, LUA_REGISTRYINDEX);
    ss->co = co;
    return 0;
}

static void session_finish_free(struct script_session *ss);

/* A hook call has ended (returned, failed, or ran out of budget). */
static void
call_done(struct script_session *ss, int st)
{
    if (st != LUA_OK)
        report_error(ss, st, hook_names[ss->call.hook], &ss->out);
    else
        lua_settop(ss->co, 0);
}

/* After lua_resume: LUA_YIELD means the hook waits for emu.state. */
static int
after_resume(struct script_session *ss, int st)
{
    if (st == LUA_YIELD) {
        if (ss->wait.active && ss->call.can_wait) {
            ss->pending = true;
            return SCRIPT_PENDING;
        }
        /* No coroutine library: only our own waits yield. */
        lua_pushstring(ss->co, "a hook may not yield here");
        st = LUA_ERRRUN;
    }
    call_done(ss, st);
    return SCRIPT_DONE;
}

/* script_call: run one hook in the session's coroutine with a fresh
 * budget; the answer lands in ss->out. */
static int
script_call(struct script_call *c, struct decision *out)
{
    struct script_session *ss = c->ss;
    struct script_inst *in = ss->inst;
    if (in->ref_hooks[c->hook] == LUA_NOREF || ss->s == NULL)
        return SCRIPT_DONE;
    lua_State *L = in->L;
    decision_cleanup(&ss->out);
    decision_init(&ss->out);
    if (ss->co == NULL) {
        lua_pushcfunction(L, thread_protected);
        lua_pushlightuserdata(L, ss);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            lua_settop(L, 0);
            decision_cleanup(out);
            decision_init(out);
            out->kind = DECIDE_REPLY;
            buf_append_str(&out->reply,
                           "451 4.3.0 Error: internal scenario error");
            return SCRIPT_DONE;
        }
    }
    ss->call = *c;
    ss->wait.store_failed = false;
    lua_State *co = ss->co;
    ss->cur_hook = c->hook;
    ss->budget.ss = ss;
    set_budget(co, &ss->budget, in->se->emu->cfg->lua_instr_limit);
    lua_settop(co, 0);
    lua_pushcfunction(co, call_trampoline);
    lua_pushlightuserdata(co, &ss->call);
    int nres = 0;
    int rc = after_resume(ss, lua_resume(co, L, 1, &nres));
    if (rc == SCRIPT_DONE) {
        decision_cleanup(out);
        *out = ss->out;
        decision_init(&ss->out);
    }
    return rc;
}

void
script_resume(struct script_session *ss)
{
    struct script_inst *in = ss->inst;
    if (!ss->pending || ss->co == NULL)
        return;
    /* Waiting does not count against the wall-clock budget. */
    budget_start(&ss->budget, ss->budget.limit > ss->budget.used
                                  ? ss->budget.limit
                                  : ss->budget.used + HOOK_STEP);
    int nres = 0;
    if (after_resume(ss, lua_resume(ss->co, in->L, 0, &nres)) == SCRIPT_PENDING)
        return;
    ss->pending = false;
    if (ss->abandoned) {
        session_finish_free(ss);
        return;
    }
    if (ss->call.hook != HOOK_DISCONNECT && ss->s)
        smtp_session_hook_done(ss->s, &ss->out);
    decision_cleanup(&ss->out);
    decision_init(&ss->out);
}

struct script_session *
script_current(lua_State *L)
{
    struct script_budget *b = *(struct script_budget **)lua_getextraspace(L);
    return b ? b->ss : NULL;
}

/* ---- stage arguments ---- */

static void
push_str_or_nil(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
}

static void
push_params(lua_State *L, const struct smtp_envelope_args *env)
{
    lua_createtable(L, 0, (int)env->n_params);
    for (size_t i = 0; i < env->n_params; i++) {
        const struct smtp_param *p = &env->params[i];
        lua_pushlstring(L, p->key, p->key_len);
        if (p->val)
            lua_pushlstring(L, p->val, p->val_len);
        else
            lua_pushboolean(L, 1);
        lua_settable(L, -3);
    }
}

static void
push_path(lua_State *co, struct script_call *c)
{
    struct session_view v;
    smtp_session_view(c->ss->s, &v);
    const struct smtp_path *p = &v.env->path;
    lua_createtable(co, 0, 6);
    lua_pushlstring(co, p->null_path ? "" : p->addr,
                    p->null_path ? 0 : p->addr_len);
    lua_setfield(co, -2, "address");
    lua_pushlstring(co, p->local ? p->local : "", p->local_len);
    lua_setfield(co, -2, "local_part");
    if (p->domain)
        lua_pushlstring(co, p->domain, p->domain_len);
    else
        lua_pushstring(co, "");
    lua_setfield(co, -2, "domain");
    lua_pushboolean(co, p->null_path);
    lua_setfield(co, -2, "null");
    push_params(co, v.env);
    lua_setfield(co, -2, "params");
}

static void
push_connect(lua_State *co, struct script_call *c)
{
    struct session_view v;
    smtp_session_view(c->ss->s, &v);
    lua_createtable(co, 0, 3);
    lua_pushstring(co, v.client_ip);
    lua_setfield(co, -2, "ip");
    lua_pushinteger(co, v.client_port);
    lua_setfield(co, -2, "port");
    lua_pushstring(co, v.client_name);
    lua_setfield(co, -2, "name");
}

static void
push_helo(lua_State *co, struct script_call *c)
{
    struct session_view v;
    smtp_session_view(c->ss->s, &v);
    lua_pushlstring(co, v.cmd->args, v.cmd->args_len);
}

static void
push_tls(lua_State *co, struct script_call *c)
{
    struct session_view v;
    smtp_session_view(c->ss->s, &v);
    script_api_push_tls(co, v.tls);
}

static void
push_auth(lua_State *co, struct script_call *c)
{
    struct session_view v;
    smtp_session_view(c->ss->s, &v);
    lua_createtable(co, 0, 5);
    push_str_or_nil(co, v.auth_mech);
    lua_setfield(co, -2, "mechanism");
    push_str_or_nil(co, v.auth_user);
    lua_setfield(co, -2, "user");
    if (v.auth_secret) {
        lua_pushlstring(co, v.auth_secret, v.auth_secret_len);
        lua_setfield(co, -2,
                     v.auth_mech && !strcmp(v.auth_mech, "XOAUTH2")
                         ? "token"
                         : "password");
    }
    lua_pushinteger(co, v.auth_step == 101 ? 2 : 1);
    lua_setfield(co, -2, "step");
}

static void
push_verb(lua_State *co, struct script_call *c)
{
    lua_pushstring(co, (const char *)c->arg);
}

static void
push_command(lua_State *co, struct script_call *c)
{
    lua_createtable(co, 0, 2);
    lua_pushstring(co, c->arg2);
    lua_setfield(co, -2, "verb");
    lua_pushlstring(co, (const char *)c->arg, c->arg_len);
    lua_setfield(co, -2, "args");
}

/* The message at the message stage: raw bytes, size and envelope. The
 * parsed headers (unfolded, in order) and the body are made from m.raw on
 * first use by the message metatable's __index (script_api.c), so a hook
 * that never looks at them costs no copy; m:header(name) is in the
 * prelude. */
static void
push_message(lua_State *co, struct script_call *c)
{
    struct session_view v;
    smtp_session_view(c->ss->s, &v);
    lua_createtable(co, 0, 8);
    lua_pushlstring(co, v.msg, v.msg_len);
    lua_setfield(co, -2, "raw");
    lua_pushinteger(co, (lua_Integer)v.msg_len);
    lua_setfield(co, -2, "size");
    push_str_or_nil(co, v.mail_from);
    lua_setfield(co, -2, "mail_from");
    lua_createtable(co, (int)v.n_rcpts, 0);
    for (size_t i = 0; i < v.n_rcpts; i++) {
        lua_pushstring(co, v.rcpts[i]);
        lua_rawseti(co, -2, (lua_Integer)i + 1);
    }
    lua_setfield(co, -2, "rcpts");
    lua_getfield(co, LUA_REGISTRYINDEX, "emu.message_mt");
    lua_setmetatable(co, -2);
}

static void
push_disconnect(lua_State *co, struct script_call *c)
{
    lua_createtable(co, 0, 3);
    lua_pushstring(co, (const char *)c->arg);
    lua_setfield(co, -2, "outcome");
    lua_pushinteger(co, (lua_Integer)c->arg_len);
    lua_setfield(co, -2, "code");
    push_str_or_nil(co, c->arg2);
    lua_setfield(co, -2, "stage");
}

static enum script_hook
stage_hook(enum smtp_stage st)
{
    switch (st) {
    case STAGE_CONNECT:
        return HOOK_CONNECT;
    case STAGE_EHLO:
        return HOOK_EHLO;
    case STAGE_STARTTLS:
        return HOOK_STARTTLS;
    case STAGE_AUTH:
        return HOOK_AUTH;
    case STAGE_MAIL:
        return HOOK_MAIL;
    case STAGE_RCPT:
        return HOOK_RCPT;
    case STAGE_DATA:
        return HOOK_DATA;
    case STAGE_MESSAGE:
        return HOOK_MESSAGE;
    case STAGE_QUIT:
        return HOOK_QUIT;
    case STAGE_DISCONNECT:
        return HOOK_DISCONNECT;
    case STAGE_COUNT:
        break;
    }
    return HOOK_COUNT;
}

int
script_decide(struct script_session *ss, enum smtp_stage stage,
              struct decision *out)
{
    enum script_hook h = stage_hook(stage);
    if (ss == NULL || h == HOOK_COUNT || !script_has_hook(ss, h))
        return SCRIPT_DONE;
    struct script_call c = {ss, h, NULL, NULL, 0, NULL, true};
    switch (h) {
    case HOOK_CONNECT:
        c.push_arg = push_connect;
        break;
    case HOOK_EHLO:
        c.push_arg = push_helo;
        break;
    case HOOK_STARTTLS:
        c.push_arg = push_tls;
        break;
    case HOOK_AUTH:
        c.push_arg = push_auth;
        break;
    case HOOK_MAIL:
    case HOOK_RCPT:
        c.push_arg = push_path;
        break;
    case HOOK_DATA: {
        struct session_view v;
        smtp_session_view(ss->s, &v);
        c.push_arg = push_verb;
        c.arg = v.cmd->verb == SMTP_VERB_BDAT ? "BDAT" : "DATA";
        break;
    }
    case HOOK_MESSAGE:
        c.push_arg = push_message;
        break;
    case HOOK_QUIT:
    case HOOK_DISCONNECT:
    case HOOK_COMMAND:
    case HOOK_TLS:
    case HOOK_COUNT:
        break;
    }
    return script_call(&c, out);
}

void
script_tls(struct script_session *ss, struct decision *out)
{
    if (!script_has_hook(ss, HOOK_TLS))
        return;
    struct script_call c = {ss, HOOK_TLS, push_connect, NULL, 0, NULL, false};
    script_call(&c, out);
}

int
script_command(struct script_session *ss, const char *verb, const char *args,
               size_t args_len, struct decision *out)
{
    if (!script_has_hook(ss, HOOK_COMMAND))
        return SCRIPT_DONE;
    struct script_call c = {ss,       HOOK_COMMAND, push_command, args,
                            args_len, verb,         true};
    return script_call(&c, out);
}

static int
tx_reset_protected(lua_State *L)
{
    struct script_session *ss = lua_touserdata(L, 1);
    if (ss->ref_tx != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ss->ref_tx);
        ss->ref_tx = LUA_NOREF;
    }
    return 0;
}

void
script_tx_reset(struct script_session *ss)
{
    if (ss == NULL || ss->ref_tx == LUA_NOREF)
        return;
    lua_State *L = ss->inst->L;
    lua_pushcfunction(L, tx_reset_protected);
    lua_pushlightuserdata(L, ss);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        lua_settop(L, 0);
}

static int
unref_protected(lua_State *L)
{
    struct script_session *ss = lua_touserdata(L, 1);
    if (ss->ref_ud != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ss->ref_ud);
        struct script_ud *ud = lua_touserdata(L, -1);
        if (ud)
            ud->ss = NULL;
        lua_pop(L, 1);
    }
    int *refs[] = {&ss->ref_ud, &ss->ref_data, &ss->ref_tx, &ss->ref_co};
    for (size_t i = 0; i < EMU_ARRAY_LEN(refs); i++) {
        if (*refs[i] != LUA_NOREF)
            luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
        *refs[i] = LUA_NOREF;
    }
    return 0;
}

/* Release a script session for good (its coroutine, references). */
static void
session_finish_free(struct script_session *ss)
{
    struct script_inst *in = ss->inst;
    lua_State *L = in->L;
    ss->co = NULL;
    lua_pushcfunction(L, unref_protected);
    lua_pushlightuserdata(L, ss);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        lua_settop(L, 0);
    decision_cleanup(&ss->out);
    emu_free(ss->wait.err);
    emu_free(ss->wait.str);
    emu_free(ss->ehlo);
    emu_free(ss->banner);
    emu_free(ss);
    inst_release(in);
}

void
script_session_end(struct script_session *ss, const char *outcome, int code,
                   const char *stage)
{
    if (ss == NULL)
        return;
    if (ss->pending) {
        /* A hook still waits for Redis: let it finish on its own, with
         * the session object already invalid. */
        ss->abandoned = true;
        ss->s = NULL;
        return;
    }
    if (script_has_hook(ss, HOOK_DISCONNECT)) {
        /* Bookkeeping only: whatever it returns is ignored. It may wait
         * for emu.state; the session is gone by then. */
        struct decision d;
        decision_init(&d);
        struct script_call c = {ss,      HOOK_DISCONNECT, push_disconnect,
                                outcome, (size_t)code,    stage,
                                true};
        int rc = script_call(&c, &d);
        decision_cleanup(&d);
        if (rc == SCRIPT_PENDING) {
            ss->abandoned = true;
            ss->s = NULL;
            return;
        }
    }
    session_finish_free(ss);
}
