/*
 * script_api: what a scenario can touch. The sandbox (base without dofile,
 * loadfile, load, require or collectgarbage; string, table, math, utf8; no
 * io, os, debug or coroutine), the session object ("emu.session" userdata:
 * fields read on demand, never a raw pointer that could outlive the
 * session), decisions ("emu.decision" tables), and the emu.* library:
 * replies, the scenario clock, the shared state store, CIDR and address
 * helpers, seeded randomness, logging and the lua/ helper modules. The Lua
 * half of the library is lua/prelude.lua.
 */
#include <ctype.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "cidr.h"
#include "emu.h"
#include "kv.h"
#include "net.h"
#include "reply.h"
#include "scenario.h"
#include "script_int.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "state.h"

double
script_now(const struct emu *e)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 +
           atomic_load(&((struct emu *)e)->clock_offset);
}

static struct script_session *
check_session(lua_State *L, int idx)
{
    struct script_ud *ud = luaL_checkudata(L, idx, SESSION_MT);
    if (ud->ss == NULL || ud->ss->s == NULL)
        luaL_error(L, "this session is over (a session object was kept "
                      "after its connection ended)");
    return ud->ss;
}

static struct rng *
rng_of(lua_State *L)
{
    struct script_ctx *c = script_ctx(L);
    return c->w ? &c->w->rng : &c->rng;
}

/* ------------------------------------------------------------------ */
/* Replies and decisions                                               */

/* emu.reply(code, esc, text|lines) or emu.reply("550 5.7.1 text"). */
static int
l_reply(lua_State *L)
{
    struct buf b = {0};
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t n;
        const char *t = lua_tolstring(L, 1, &n);
        struct buf chk = {0};
        int code = reply_finish(&chk, t, n);
        buf_cleanup(&chk);
        if (code < 0)
            return luaL_error(L,
                              "emu.reply: not a valid reply: '%s' (want "
                              "\"CODE text\" lines, CODE 200-599)",
                              t);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, "reply");
        lua_setfield(L, -2, "kind");
        lua_pushvalue(L, 1);
        lua_setfield(L, -2, "text");
        luaL_setmetatable(L, DECISION_MT);
        return 1;
    }
    lua_Integer code = luaL_checkinteger(L, 1);
    const char *esc = luaL_optstring(L, 2, NULL);
    const char *text;
    size_t tlen;
    struct buf lines = {0};
    if (lua_istable(L, 3)) {
        lua_Integer n = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 3, i);
            size_t l;
            const char *s = lua_tolstring(L, -1, &l);
            if (s == NULL) {
                buf_cleanup(&lines);
                return luaL_error(L, "emu.reply: line %d is not a string",
                                  (int)i);
            }
            if ((i > 1 && buf_append_char(&lines, '\n') < 0) ||
                buf_append(&lines, s, l) < 0) {
                buf_cleanup(&lines);
                return luaL_error(L, "not enough memory");
            }
            lua_pop(L, 1);
        }
        text = lines.data ? lines.data : "";
        tlen = lines.len;
    } else {
        text = luaL_optlstring(L, 3, "", &tlen);
    }
    if (code < 200 || code > 599 ||
        (esc && esc[0] && !reply_esc_valid(esc, strlen(esc)))) {
        buf_cleanup(&lines);
        return luaL_error(L, "emu.reply: bad code %d or enhanced code '%s'",
                          (int)code, esc ? esc : "");
    }
    int rc = reply_build(&b, (int)code, esc, text, tlen);
    buf_cleanup(&lines);
    if (rc < 0) {
        buf_cleanup(&b);
        return luaL_error(L, "emu.reply: the text holds a CR or NUL, or a "
                             "line is too long");
    }
    lua_createtable(L, 0, 2);
    lua_pushstring(L, "reply");
    lua_setfield(L, -2, "kind");
    lua_pushlstring(L, b.data ? b.data : "", b.len);
    lua_setfield(L, -2, "text");
    buf_cleanup(&b);
    luaL_setmetatable(L, DECISION_MT);
    return 1;
}

static const char *const kind_names[] = {"default", "reply",   "drop", "reset",
                                         "hang",    "partial", NULL};
static const enum decide_kind kind_values[] = {DECIDE_DEFAULT, DECIDE_REPLY,
                                               DECIDE_DROP,    DECIDE_RESET,
                                               DECIDE_HANG,    DECIDE_PARTIAL};
static const char *const then_names[] = {
    "none", "close", "reset", "hang", "close_on_input", "reset_on_input", NULL};
static const enum decide_then then_values[] = {
    THEN_NONE, THEN_CLOSE,          THEN_RESET,
    THEN_HANG, THEN_CLOSE_ON_INPUT, THEN_RESET_ON_INPUT};

static int
opt_choice(lua_State *L, int t, const char *k, const char *const *names,
           int def)
{
    lua_getfield(L, t, k);
    int r = def;
    if (!lua_isnil(L, -1)) {
        const char *s = lua_tostring(L, -1);
        r = -1;
        for (int i = 0; s && names[i]; i++)
            if (strcmp(s, names[i]) == 0)
                r = i;
        if (r < 0)
            luaL_error(L, "decision: bad %s '%s'", k, s ? s : "?");
    }
    lua_pop(L, 1);
    return r;
}

static uint32_t
opt_ms(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    double v = lua_isnil(L, -1) ? 0 : lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= 0 && v <= 86400))
        luaL_error(L, "decision: %s must be seconds from 0 to 86400", k);
    return (uint32_t)(v * 1000 + 0.5);
}

/* A short word field: letters, digits, '.', '-'. */
static void
opt_name(lua_State *L, int t, const char *k, char *out, size_t cap)
{
    lua_getfield(L, t, k);
    size_t n = 0;
    const char *v = lua_isnil(L, -1) ? "" : lua_tolstring(L, -1, &n);
    bool ok = v != NULL && n < cap;
    for (size_t i = 0; ok && i < n; i++)
        ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
             v[i] == '.' || v[i] == '-';
    if (!ok)
        luaL_error(L, "decision: bad %s '%s'", k, v ? v : "?");
    memcpy(out, v, n);
    out[n] = '\0';
    lua_pop(L, 1);
}

void
script_api_to_decision(lua_State *L, int idx, const char *hook,
                       struct decision *out)
{
    idx = lua_absindex(L, idx);
    decision_cleanup(out);
    decision_init(out);
    if (lua_isnoneornil(L, idx))
        return;
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushcfunction(L, l_reply);
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        idx = lua_gettop(L);
    }
    if (!luaL_testudata(L, idx, DECISION_MT) &&
        !(lua_istable(L, idx) && lua_getmetatable(L, idx) &&
          (luaL_getmetatable(L, DECISION_MT), lua_rawequal(L, -1, -2)) &&
          (lua_pop(L, 2), 1))) {
        luaL_error(L,
                   "%s returned a %s; return nil (the default) or a decision "
                   "(emu.reply, emu.drop, emu.reset, emu.hang, emu.partial, "
                   "emu.delay, emu.cut)",
                   hook, luaL_typename(L, idx));
    }
    int kind = opt_choice(L, idx, "kind", kind_names, 0);
    out->kind = kind_values[kind];
    /* The text stays on the stack (the table may change under us) and is
     * copied last: every check that can raise comes first, so nothing
     * allocated here is lost to a Lua error. */
    lua_getfield(L, idx, "text");
    size_t n = 0;
    const char *t = lua_tolstring(L, -1, &n);
    if ((out->kind == DECIDE_REPLY || out->kind == DECIDE_PARTIAL) && !t)
        luaL_error(L, "decision: a %s needs its text", kind_names[kind]);
    out->delay_ms = opt_ms(L, idx, "delay");
    out->hang_ms = opt_ms(L, idx, "hang");
    out->then = then_values[opt_choice(L, idx, "next", then_names,
                                       out->kind == DECIDE_PARTIAL ? 1 : 0)];
    lua_getfield(L, idx, "cut");
    double cut = lua_isnil(L, -1) ? 0 : lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(cut >= 0 && cut < 1e15))
        luaL_error(L, "decision: cut must be a byte count");
    out->cut_bytes = (uint64_t)cut;
    out->cut_then = then_values[opt_choice(L, idx, "cut_mode", then_names, 1)];
    out->line_delay_ms = opt_ms(L, idx, "line_delay");
    opt_name(L, idx, "tls_cert", out->tls_cert, sizeof(out->tls_cert));
    opt_name(L, idx, "tls_versions", out->tls_versions,
             sizeof(out->tls_versions));
    if (out->kind == DECIDE_REPLY) {
        /* The session acts on the reply's code (a 250 at RCPT accepts the
         * recipient), so a text it could not send must be refused here,
         * before anything changes. */
        struct buf tmp = {0};
        int code = reply_finish(&tmp, t, n);
        buf_cleanup(&tmp);
        if (code < 0)
            luaL_error(L,
                       "decision: not a valid reply (lines of CODE, then ' ' "
                       "or '-' and text; one code 200-599; at most %d lines "
                       "of %d bytes; no CR or NUL)",
                       REPLY_LINES_MAX, REPLY_LINE_MAX - 2);
    }
    if (t && buf_append(&out->reply, t, n) < 0)
        luaL_error(L, "not enough memory");
    lua_pop(L, 1); /* text */
    if (out->kind == DECIDE_REPLY && out->then == THEN_CLOSE)
        out->kind = DECIDE_REPLY_CLOSE;
}

/* emu._decision(t): give a plain table the decision metatable after a
 * sanity check; the prelude's constructors use it. */
static int
l_decision(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_setmetatable(L, DECISION_MT);
    struct decision d;
    decision_init(&d);
    script_api_to_decision(L, 1, "decision", &d);
    decision_cleanup(&d);
    lua_settop(L, 1);
    return 1;
}

/* ------------------------------------------------------------------ */
/* The session object                                                  */

static void
push_strv(lua_State *L, const char *const *v, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* "CN=x,O=y" -> "x" */
static void
push_cn(lua_State *L, const char *subject)
{
    const char *p = subject;
    while (p && *p) {
        if (strncmp(p, "CN=", 3) == 0) {
            const char *e = strchr(p + 3, ',');
            lua_pushlstring(L, p + 3, e ? (size_t)(e - p - 3) : strlen(p + 3));
            return;
        }
        p = strchr(p, ',');
        if (p)
            p++;
    }
    lua_pushnil(L);
}

void
script_api_push_tls(lua_State *L, const struct net_tls_info *t)
{
    if (t == NULL) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 10);
    lua_pushstring(L, t->version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, t->cipher);
    lua_setfield(L, -2, "cipher");
    lua_pushboolean(L, t->client_cert);
    lua_setfield(L, -2, "client_cert");
    if (t->client_cert) {
        lua_createtable(L, 0, 8);
        lua_pushstring(L, t->subject);
        lua_setfield(L, -2, "subject");
        lua_pushstring(L, t->issuer);
        lua_setfield(L, -2, "issuer");
        push_cn(L, t->subject);
        lua_setfield(L, -2, "cn");
        lua_pushboolean(L, t->verified);
        lua_setfield(L, -2, "verified");
        lua_pushstring(L, t->verify_error);
        lua_setfield(L, -2, "error");
        lua_pushstring(L, t->not_after);
        lua_setfield(L, -2, "not_after");
        /* SANs split into all of them and the DNS names alone. */
        lua_newtable(L);
        lua_newtable(L);
        lua_Integer ns = 0, nd = 0;
        const char *p = t->sans;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            lua_pushlstring(L, p, l);
            lua_rawseti(L, -3, ++ns);
            if (l > 4 && strncmp(p, "DNS:", 4) == 0) {
                lua_pushlstring(L, p + 4, l - 4);
                lua_rawseti(L, -2, ++nd);
            }
            p += l + (e ? 1 : 0);
        }
        lua_setfield(L, -3, "dns_names");
        lua_setfield(L, -2, "sans");
        lua_setfield(L, -2, "cert");
    }
}

static int
session_ref_table(lua_State *L, struct script_session *ss, int *ref)
{
    if (*ref == LUA_NOREF) {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        *ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 1;
    }
    (void)ss;
    lua_rawgeti(L, LUA_REGISTRYINDEX, *ref);
    return 1;
}

static int l_s_ehlo_keywords(lua_State *L);
static int l_s_banner(lua_State *L);
static int l_s_log(lua_State *L);

/* The session's fields. session_index finds a key's number in a table
 * (its first upvalue, built from this list) instead of comparing the key
 * with every name: one table lookup per field read. */
enum session_field {
    SFIELD_CLIENT_IP = 1,
    SFIELD_CLIENT_PORT,
    SFIELD_CLIENT_NAME,
    SFIELD_ID,
    SFIELD_HELO,
    SFIELD_ESMTP,
    SFIELD_MAIL_FROM,
    SFIELD_MAIL_PARAMS,
    SFIELD_RCPTS,
    SFIELD_RCPTS_REFUSED,
    SFIELD_TLS,
    SFIELD_AUTH,
    SFIELD_AUTHENTICATED,
    SFIELD_PEER_IP,
    SFIELD_PEER_PORT,
    SFIELD_LISTENER,
    SFIELD_MESSAGES,
    SFIELD_ERRORS,
    SFIELD_MESSAGE_SIZE,
    SFIELD_DATA,
    SFIELD_TX,
    SFIELD_PARAMS,
    SFIELD_SCENARIO,
    SFIELD_HOSTNAME,
    SFIELD_EHLO_KEYWORDS,
    SFIELD_BANNER,
    SFIELD_LOG,
};

static const struct {
    const char *name;
    enum session_field f;
} session_fields[] = {
    {"client_ip", SFIELD_CLIENT_IP},
    {"client_port", SFIELD_CLIENT_PORT},
    {"client_name", SFIELD_CLIENT_NAME},
    {"id", SFIELD_ID},
    {"helo", SFIELD_HELO},
    {"esmtp", SFIELD_ESMTP},
    {"mail_from", SFIELD_MAIL_FROM},
    {"mail_params", SFIELD_MAIL_PARAMS},
    {"rcpts", SFIELD_RCPTS},
    {"rcpts_refused", SFIELD_RCPTS_REFUSED},
    {"tls", SFIELD_TLS},
    {"auth", SFIELD_AUTH},
    {"authenticated", SFIELD_AUTHENTICATED},
    {"peer_ip", SFIELD_PEER_IP},
    {"peer_port", SFIELD_PEER_PORT},
    {"listener", SFIELD_LISTENER},
    {"messages", SFIELD_MESSAGES},
    {"errors", SFIELD_ERRORS},
    {"message_size", SFIELD_MESSAGE_SIZE},
    {"data", SFIELD_DATA},
    {"tx", SFIELD_TX},
    {"params", SFIELD_PARAMS},
    {"scenario", SFIELD_SCENARIO},
    {"hostname", SFIELD_HOSTNAME},
    {"ehlo_keywords", SFIELD_EHLO_KEYWORDS},
    {"banner", SFIELD_BANNER},
    {"log", SFIELD_LOG},
};

static int
session_index(lua_State *L)
{
    /* check_session, with the metatable at hand (upvalue 2) instead of
     * looked up in the registry by name on every field read. */
    struct script_ud *ud = lua_touserdata(L, 1);
    if (ud == NULL || !lua_getmetatable(L, 1) ||
        !lua_rawequal(L, -1, lua_upvalueindex(2)))
        ud = luaL_checkudata(L, 1, SESSION_MT); /* raises the usual error */
    else
        lua_pop(L, 1);
    if (ud->ss == NULL || ud->ss->s == NULL)
        luaL_error(L, "this session is over (a session object was kept "
                      "after its connection ended)");
    struct script_session *ss = ud->ss;
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    int f = lua_rawget(L, lua_upvalueindex(1)) == LUA_TNUMBER
                ? (int)lua_tointeger(L, -1)
                : 0;
    lua_pop(L, 1);
    /* Fields that need no view of the session first. */
    switch (f) {
    case SFIELD_DATA:
        return session_ref_table(L, ss, &ss->ref_data);
    case SFIELD_TX:
        return session_ref_table(L, ss, &ss->ref_tx);
    case SFIELD_PARAMS:
        lua_rawgeti(L, LUA_REGISTRYINDEX, ss->ref_params);
        return 1;
    case SFIELD_EHLO_KEYWORDS:
        lua_pushcfunction(L, l_s_ehlo_keywords);
        return 1;
    case SFIELD_BANNER:
        lua_pushcfunction(L, l_s_banner);
        return 1;
    case SFIELD_LOG:
        lua_pushcfunction(L, l_s_log);
        return 1;
    default:
        break;
    }
    if (f == 0) {
        /* Not a field name: the error names the key as a string. */
        const char *k = luaL_checkstring(L, 2);
        return luaL_error(L, "session has no field '%s'", k);
    }
    struct session_view v;
    smtp_session_view(ss->s, &v);
    switch ((enum session_field)f) {
    case SFIELD_CLIENT_IP:
        lua_pushstring(L, v.client_ip);
        break;
    case SFIELD_CLIENT_PORT:
        lua_pushinteger(L, v.client_port);
        break;
    case SFIELD_CLIENT_NAME:
        lua_pushstring(L, v.client_name);
        break;
    case SFIELD_ID:
        lua_pushinteger(L, (lua_Integer)v.id);
        break;
    case SFIELD_HELO:
        v.helo ? lua_pushstring(L, v.helo) : lua_pushnil(L);
        break;
    case SFIELD_ESMTP:
        lua_pushboolean(L, v.esmtp);
        break;
    case SFIELD_MAIL_FROM:
        v.mail_from ? lua_pushstring(L, v.mail_from) : lua_pushnil(L);
        break;
    case SFIELD_MAIL_PARAMS:
        lua_pushstring(L, v.mail_params);
        break;
    case SFIELD_RCPTS:
        push_strv(L, v.rcpts, v.n_rcpts);
        break;
    case SFIELD_RCPTS_REFUSED:
        lua_pushinteger(L, v.n_rcpts_refused);
        break;
    case SFIELD_TLS:
        script_api_push_tls(L, v.tls);
        break;
    case SFIELD_AUTH:
        if (v.authenticated) {
            lua_createtable(L, 0, 2);
            lua_pushstring(L, v.auth_mech ? v.auth_mech : "");
            lua_setfield(L, -2, "mechanism");
            lua_pushstring(L, v.auth_user ? v.auth_user : "");
            lua_setfield(L, -2, "user");
        } else {
            lua_pushnil(L);
        }
        break;
    case SFIELD_AUTHENTICATED:
        lua_pushboolean(L, v.authenticated);
        break;
    case SFIELD_PEER_IP:
        lua_pushstring(L, v.peer_ip);
        break;
    case SFIELD_PEER_PORT:
        lua_pushinteger(L, v.peer_port);
        break;
    case SFIELD_LISTENER:
        lua_pushstring(L, v.listener);
        break;
    case SFIELD_MESSAGES:
        lua_pushinteger(L, v.messages);
        break;
    case SFIELD_ERRORS:
        lua_pushinteger(L, v.errors);
        break;
    case SFIELD_MESSAGE_SIZE:
        lua_pushinteger(L, (lua_Integer)v.msg_len);
        break;
    case SFIELD_SCENARIO:
        lua_pushstring(L, script_session_scenario(ss));
        break;
    case SFIELD_HOSTNAME:
        lua_pushstring(L, script_ctx(L)->emu->hostname);
        break;
    case SFIELD_DATA:
    case SFIELD_TX:
    case SFIELD_PARAMS:
    case SFIELD_EHLO_KEYWORDS:
    case SFIELD_BANNER:
    case SFIELD_LOG:
        break; /* handled above */
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* The message object                                                  */

/* Where the body of the message `m` starts: after the first empty line
 * (CRLF or bare LF), or at the first line that is neither a header nor
 * the continuation of one. With `hs` (a stack index) the headers are
 * appended there as {name=, value=} tables, unfolded, in order. */
static size_t
message_scan(lua_State *L, int hs, const char *m, size_t len)
{
    size_t i = 0, n = 0;
    while (i < len) {
        const char *nl = memchr(m + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - m) : len;
        size_t le = end > i && m[end - 1] == '\r' ? end - 1 : end;
        if (le == i) /* blank line: the body follows */
            return nl ? end + 1 : len;
        if ((m[i] == ' ' || m[i] == '\t') && n > 0) {
            /* Folded: append to the previous header's value. */
            if (hs) {
                lua_geti(L, hs, (lua_Integer)n);
                lua_getfield(L, -1, "value");
                lua_pushlstring(L, m + i, le - i);
                lua_concat(L, 2);
                lua_setfield(L, -2, "value");
                lua_pop(L, 1);
            }
        } else {
            const char *colon = memchr(m + i, ':', le - i);
            if (colon == NULL) /* not a header: the body starts here */
                return i;
            n++;
            if (hs) {
                const char *val = colon + 1;
                while (val < m + le && (*val == ' ' || *val == '\t'))
                    val++;
                lua_createtable(L, 0, 2);
                lua_pushlstring(L, m + i, (size_t)(colon - (m + i)));
                lua_setfield(L, -2, "name");
                lua_pushlstring(L, val, (size_t)(m + le - val));
                lua_setfield(L, -2, "value");
                lua_rawseti(L, hs, (lua_Integer)n);
            }
        }
        i = nl ? end + 1 : len;
    }
    return len;
}

/* __index of a message: m.headers and m.body are made from m.raw on first
 * use and then stored in the table (each costs nothing until a hook reads
 * it); anything else is a method (upvalue 1). */
static int
message_index(lua_State *L)
{
    size_t kl = 0;
    const char *k =
        lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &kl) : NULL;
    bool headers = k && kl == 7 && memcmp(k, "headers", 7) == 0;
    bool body = k && kl == 4 && memcmp(k, "body", 4) == 0;
    if ((headers || body) && lua_istable(L, 1)) {
        lua_getfield(L, 1, "raw");
        size_t len = 0;
        const char *m = lua_tolstring(L, -1, &len);
        if (m != NULL) {
            if (headers) {
                lua_newtable(L);
                message_scan(L, lua_gettop(L), m, len);
            } else {
                size_t at = message_scan(L, 0, m, len);
                lua_pushlstring(L, m + at, len - at);
            }
            lua_pushvalue(L, 2);
            lua_pushvalue(L, -2);
            lua_rawset(L, 1);
            return 1;
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

/* emu._header(headers, name, all): m:header() and m:header_all() of the
 * prelude. Names compare case-insensitively the way string.lower does
 * (tolower on each byte), without making a lowercased copy of each. */
static int
l_header(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t nl;
    const char *name = luaL_checklstring(L, 2, &nl);
    bool all = lua_toboolean(L, 3);
    lua_settop(L, 3);
    if (all)
        lua_newtable(L); /* at 4 */
    lua_Integer found = 0;
    for (lua_Integer i = 1; lua_geti(L, 1, i) != LUA_TNIL; i++) {
        lua_getfield(L, -1, "name");
        size_t hl;
        const char *h = lua_tolstring(L, -1, &hl);
        if (h == NULL)
            return luaL_error(L, "header %d has no name", (int)i);
        bool same = hl == nl;
        for (size_t j = 0; same && j < nl; j++)
            same =
                tolower((unsigned char)h[j]) == tolower((unsigned char)name[j]);
        lua_pop(L, 1);
        if (same) {
            lua_getfield(L, -1, "value");
            if (!all)
                return 1;
            lua_rawseti(L, 4, ++found);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (!all)
        lua_pushnil(L);
    return 1;
}

/* emu._name_params(raw): where MIME name parameters are in a message, as
 * the prelude's m:attachments() wants them: {suffix, at, suffix, at, ...}
 * for every match of the Lua pattern
 *   [; \t\r\n]f?i?l?e?name([%*%d]*)=%s*()
 * in the order, and with the same results, that string.gmatch gives, in
 * one pass of C instead of a pattern match tried at every byte. (The
 * pattern never needs to backtrack: "name" cannot start with f, i, l or e,
 * and '=' is not in [%*%d], so the greedy choice is the only one.) */
static int
l_name_params(lua_State *L)
{
    size_t len;
    const char *r = luaL_checklstring(L, 1, &len);
    lua_newtable(L);
    lua_Integer n = 0;
    size_t s = 0;
    while (s < len) {
        const char *hit = r + s;
        while ((hit = memchr(hit, 'n', len - (size_t)(hit - r))) != NULL &&
               (len - (size_t)(hit - r) < 4 || memcmp(hit, "name", 4) != 0))
            hit++;
        if (hit == NULL || len - (size_t)(hit - r) < 4)
            break;
        size_t q = (size_t)(hit - r);
        /* The delimiter is at most 5 bytes before "name" (";file"):
         * try the starts from left to right, as gmatch would. */
        size_t from = q >= 5 ? q - 5 : 0;
        if (from < s)
            from = s;
        bool matched = false;
        for (size_t d = from; d < q && !matched; d++) {
            char c = r[d];
            if (c != ';' && c != ' ' && c != '\t' && c != '\r' && c != '\n')
                continue;
            size_t p = d + 1;
            static const char file[] = "file";
            for (size_t j = 0; j < 4; j++)
                if (p < len && r[p] == file[j])
                    p++;
            if (p != q) /* must land on this "name" */
                continue;
            p += 4;
            size_t suf = p;
            while (p < len && (r[p] == '*' || (r[p] >= '0' && r[p] <= '9')))
                p++;
            if (p >= len || r[p] != '=')
                continue;
            size_t suf_len = p - suf;
            p++;
            while (p < len && (r[p] == ' ' || (r[p] >= '\t' && r[p] <= '\r')))
                p++;
            lua_pushlstring(L, r + suf, suf_len);
            lua_rawseti(L, -2, ++n);
            lua_pushinteger(L, (lua_Integer)p + 1);
            lua_rawseti(L, -2, ++n);
            s = p;
            matched = true;
        }
        if (!matched)
            s = q + 1;
    }
    return 1;
}

static int
session_newindex(lua_State *L)
{
    return luaL_error(L, "session fields are read-only; keep your own data "
                         "in s.data (per session) or s.tx (per message)");
}

static int
session_tostring(lua_State *L)
{
    struct script_ud *ud = luaL_checkudata(L, 1, SESSION_MT);
    if (ud->ss && ud->ss->s) {
        struct session_view v;
        smtp_session_view(ud->ss->s, &v);
        lua_pushfstring(L, "session %d from %s", (int)v.id, v.client_ip);
    } else {
        lua_pushstring(L, "session (ended)");
    }
    return 1;
}

/* s:ehlo_keywords({"PIPELINING", "SIZE 1000", ...}): what EHLO offers
 * from now on (the first "250-HOST" line stays). */
static int
l_s_ehlo_keywords(lua_State *L)
{
    struct script_session *ss = check_session(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    struct buf b = {0};
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        size_t l;
        const char *s = lua_tolstring(L, -1, &l);
        if (s == NULL || l == 0 || l > 500 || memchr(s, '\n', l) ||
            memchr(s, '\r', l)) {
            buf_cleanup(&b);
            return luaL_error(L, "ehlo_keywords: item %d is not a keyword",
                              (int)i);
        }
        if (buf_append(&b, s, l) < 0 || buf_append_char(&b, '\n') < 0) {
            buf_cleanup(&b);
            return luaL_error(L, "not enough memory");
        }
        lua_pop(L, 1);
    }
    if (buf_reserve(&b, 0) < 0)
        return luaL_error(L, "not enough memory");
    emu_free(ss->ehlo);
    ss->ehlo = buf_steal(&b, NULL);
    return 0;
}

/* s:banner("text after 220 "): the greeting. */
static int
l_s_banner(lua_State *L)
{
    struct script_session *ss = check_session(L, 1);
    size_t l;
    const char *t = luaL_checklstring(L, 2, &l);
    if (memchr(t, '\r', l) || memchr(t, '\n', l) || l > 900)
        return luaL_error(L, "banner: one line of text, please");
    char *c = emu_strndup(t, l);
    if (c == NULL)
        return luaL_error(L, "not enough memory");
    emu_free(ss->banner);
    ss->banner = c;
    return 0;
}

static int
l_s_log(lua_State *L)
{
    struct script_session *ss = check_session(L, 1);
    size_t l;
    const char *m = luaL_tolstring(L, 2, &l);
    struct log_kv kv[] = {LOG_KV("scenario", script_session_scenario(ss)),
                          LOG_KVN("msg", m, l)};
    smtp_session_log(ss->s, LOG_LEVEL_INFO, "scenario-log", kv, 2);
    return 0;
}

/* ------------------------------------------------------------------ */
/* emu.*                                                               */

static int
l_now(lua_State *L)
{
    lua_pushnumber(L, script_now(script_ctx(L)->emu));
    return 1;
}

/* emu.utc([t]) -> "2025-07-30T19:50:34.124Z" (Exchange's stamp form). */
static int
l_utc(lua_State *L)
{
    double t = luaL_optnumber(L, 1, script_now(script_ctx(L)->emu));
    /* Years 0000 to 9999 only: outside, the conversion to time_t or the
     * calendar would be undefined or meaningless. */
    luaL_argcheck(L, t >= -62167219200.0 && t < 253402300800.0, 1,
                  "a time between year 0 and 9999");
    time_t sec = (time_t)floor(t);
    int ms = (int)((t - (double)sec) * 1000.0);
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char out[48];
    size_t n = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, sizeof(out) - n, ".%03dZ", ms);
    lua_pushstring(L, out);
    return 1;
}

/* emu.random() in [0,1); emu.random(m) in [1,m]; emu.random(m, n). */
static int
l_random(lua_State *L)
{
    struct rng *r = rng_of(L);
    int n = lua_gettop(L);
    if (n == 0) {
        lua_pushnumber(L, rng_unit(r));
        return 1;
    }
    lua_Integer lo = n >= 2 ? luaL_checkinteger(L, 1) : 1;
    lua_Integer hi = luaL_checkinteger(L, n >= 2 ? 2 : 1);
    luaL_argcheck(L, lo <= hi, n, "interval is empty");
    /* In unsigned arithmetic: hi - lo overflows a signed integer for the
     * widest intervals; span 0 then means all 2^64 values. */
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    uint64_t off = span ? rng_next(r) % span : rng_next(r);
    lua_pushinteger(L, (lua_Integer)((uint64_t)lo + off));
    return 1;
}

/* emu.random_hex(n [, lower]) -> n hex digits, upper case by default. */
static int
l_random_hex(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n > 0 && n <= 256, 1, "1..256 digits");
    const char *digits =
        lua_toboolean(L, 2) ? "0123456789abcdef" : "0123456789ABCDEF";
    char out[257];
    struct rng *r = rng_of(L);
    for (lua_Integer i = 0; i < n; i++)
        out[i] = digits[rng_next(r) & 15];
    lua_pushlstring(L, out, (size_t)n);
    return 1;
}

/* emu.random_string(n, alphabet) */
static int
l_random_string(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    size_t al;
    const char *a = luaL_checklstring(L, 2, &al);
    luaL_argcheck(L, n > 0 && n <= 256, 1, "1..256 characters");
    luaL_argcheck(L, al > 0, 2, "empty alphabet");
    char out[257];
    struct rng *r = rng_of(L);
    for (lua_Integer i = 0; i < n; i++)
        out[i] = a[rng_next(r) % al];
    lua_pushlstring(L, out, (size_t)n);
    return 1;
}

static int
l_log(lua_State *L)
{
    struct script_ctx *c = script_ctx(L);
    size_t l;
    luaL_tolstring(L, 1, &l);
    const char *m = lua_tostring(L, -1);
    struct log_kv kv[] = {
        LOG_KV("scenario", c->scenario_name ? c->scenario_name : "?"),
        LOG_KVN("msg", m, l)};
    log_emit(c->emu->log, LOG_LEVEL_INFO, "scenario-log", kv, 2);
    return 0;
}

/* print(...) goes to the log, tab-separated as Lua's print would. */
static int
l_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_replace(L, 1);
    lua_settop(L, 1);
    return l_log(L);
}

static int
l_b64enc(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n < 64 * 1024 * 1024, 1, "too long");
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, BASE64_ENCODED_LEN(n) + 1);
    size_t o = base64_encode((const unsigned char *)s, n, out);
    luaL_pushresultsize(&b, o);
    return 1;
}

static int
l_b64dec(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, BASE64_DECODED_MAX(n));
    long o = base64_decode(s, n, (unsigned char *)out, BASE64_DECODED_MAX(n));
    if (o < 0) {
        luaL_pushresultsize(&b, 0);
        lua_pushnil(L);
        return 1;
    }
    luaL_pushresultsize(&b, (size_t)o);
    return 1;
}

/* emu.lib("exchange"): a helper module from lua/, loaded once per state
 * into its own sandbox. */
static int
l_lib(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return luaL_error(L, "emu.lib: bad module name '%s'", name);
    lua_getfield(L, LUA_REGISTRYINDEX, "emu.libs");
    if (lua_getfield(L, -1, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    struct script_ctx *c = script_ctx(L);
    size_t len = 0;
    char *text = scenario_lib_text(c->emu, name, &len);
    if (text == NULL)
        return luaL_error(L, "emu.lib: no module lua/%s.lua", name);
    char cn[96];
    snprintf(cn, sizeof(cn), "@lua/%s.lua", name);
    int rc = luaL_loadbufferx(L, text, len, cn, "t");
    emu_free(text);
    if (rc != LUA_OK)
        return lua_error(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "emu.api");
    lua_getfield(L, -1, "_sandbox");
    lua_pushstring(L, cn + 1);
    lua_call(L, 1, 1);
    lua_setupvalue(L, -3, 1);
    lua_pop(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

/* emu._scenario(name) -> the chunk of scenario NAME, loaded in its own
 * sandbox (not yet run), for emu.use in the prelude. */
static int
l_scenario_chunk(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    struct script_ctx *c = script_ctx(L);
    char *path = NULL;
    size_t len = 0;
    char *text = scenario_source(c->emu, name, &path, &len);
    if (text == NULL)
        return luaL_error(L, "emu.use: unknown scenario '%s'", name);
    char cn[4200];
    size_t bl = strlen(c->emu->base_dir);
    const char *shown = path;
    if (bl && strncmp(path, c->emu->base_dir, bl) == 0 && path[bl] == '/')
        shown = path + bl + 1;
    snprintf(cn, sizeof(cn), "@%s", shown);
    emu_free(path);
    int rc = luaL_loadbufferx(L, text, len, cn, "t");
    emu_free(text);
    if (rc != LUA_OK)
        return lua_error(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "emu.api");
    lua_getfield(L, -1, "_sandbox");
    lua_pushstring(L, cn + 1);
    lua_call(L, 1, 1);
    lua_setupvalue(L, -3, 1);
    lua_pop(L, 1);
    lua_pushstring(L, cn + 1);
    return 2;
}

/* ---- emu.state ---- */

/* Keys live under "<scenario>/<key>", so scenarios cannot collide. */
static const char *
state_key(lua_State *L, struct script_ctx *c, size_t *len)
{
    size_t kl;
    const char *k = luaL_checklstring(L, 1, &kl);
    luaL_argcheck(L, kl > 0 && kl <= 1024, 1, "key of 1 to 1024 bytes");
    lua_pushfstring(L, "%s/%s", c->scenario_name ? c->scenario_name : "?", k);
    return lua_tolstring(L, -1, len);
}

/* Keep a copy of the answer in the session (the coroutine may be
 * suspended, and the answer's memory is only lent to us). */
static void
on_state_answer(const struct state_result *res, void *arg)
{
    struct script_session *ss = arg;
    struct script_wait *w = &ss->wait;
    emu_free(w->err);
    emu_free(w->str);
    w->err = res->err ? emu_strdup(res->err) : NULL;
    w->type = res->type;
    w->num = res->num;
    w->str = res->str ? emu_strndup(res->str, res->len) : NULL;
    w->len = res->len;
    w->deleted = res->deleted;
    w->unavailable = res->unavailable;
    if (w->active) {
        w->active = false;
        script_resume(ss);
    }
}

static int
push_answer(lua_State *L, struct script_wait *w)
{
    if (w->err) {
        /* Remembered so that the hook's failure answers as a failed
         * lookup table does in Postfix, not as a scenario bug. */
        if (w->unavailable)
            w->store_failed = true;
        w->unavailable = false;
        lua_pushfstring(L, "emu.state: %s", w->err);
        emu_free(w->err);
        w->err = NULL;
        return lua_error(L);
    }
    switch (w->op) {
    case STATE_GET:
        if (w->type == KV_NUMBER)
            lua_pushnumber(L, w->num);
        else if (w->type == KV_STRING)
            lua_pushlstring(L, w->str ? w->str : "", w->len);
        else
            lua_pushnil(L);
        return 1;
    case STATE_INCR:
        lua_pushnumber(L, w->num);
        return 1;
    case STATE_DEL:
        lua_pushboolean(L, w->deleted);
        return 1;
    default:
        return 0;
    }
}

static int
state_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct script_session *ss = (struct script_session *)ctx;
    return push_answer(L, &ss->wait);
}

/* Issue a request; answer now, or suspend the hook until Redis answers. */
static int
state_call(lua_State *L, struct state_req *rq)
{
    struct script_ctx *c = script_ctx(L);
    struct state *st = c->w ? c->w->state : NULL;
    double now = script_now(c->emu);
    struct script_session *ss = script_current(L);
    if (st == NULL || ss == NULL) {
        /* Outside a session or a worker: the local store, at once. */
        if (c->emu->kv == NULL)
            return luaL_error(L, "emu.state is only available while "
                                 "serving");
        struct script_wait w = {0};
        w.op = (int)rq->op;
        struct kv *kv = c->emu->kv;
        struct kv_value v;
        int rc = 0;
        switch (rq->op) {
        case STATE_GET:
            rc = kv_get(kv, rq->key, rq->klen, now, &v);
            w.type = v.type;
            w.num = v.num;
            w.str = v.str;
            w.len = v.len;
            break;
        case STATE_SET:
            rc = rq->type == KV_NUMBER ? kv_set_number(kv, rq->key, rq->klen,
                                                       rq->num, rq->ttl, now)
                 : rq->type == KV_STRING
                     ? kv_set_string(kv, rq->key, rq->klen, rq->str, rq->len,
                                     rq->ttl, now)
                     : (kv_del(kv, rq->key, rq->klen), 0);
            break;
        case STATE_INCR:
            rc = kv_incr(kv, rq->key, rq->klen, rq->num, rq->ttl, false, now,
                         &w.num);
            break;
        case STATE_DEL:
            w.deleted = kv_del(kv, rq->key, rq->klen);
            break;
        }
        if (rc < 0)
            w.err = emu_strdup("emu.state is full, out of memory, or the "
                               "value is not a number");
        int n = push_answer(L, &w);
        emu_free(w.str);
        return n;
    }
    struct script_wait *w = &ss->wait;
    w->op = (int)rq->op;
    w->active = false;
    if (state_request(st, rq, now, on_state_answer, ss))
        return push_answer(L, w);
    if (!lua_isyieldable(L) || !ss->call.can_wait) {
        /* The answer will come, but this hook cannot wait for it. */
        w->active = false;
        return luaL_error(L, "emu.state cannot wait for Redis in %s",
                          script_hook_name(ss->call.hook));
    }
    w->active = true;
    return lua_yieldk(L, 0, (lua_KContext)ss, state_k);
}

static int
l_state_get(lua_State *L)
{
    struct script_ctx *c = script_ctx(L);
    struct state_req rq = {0};
    rq.op = STATE_GET;
    rq.key = state_key(L, c, &rq.klen);
    return state_call(L, &rq);
}

/* emu.state.set(key, value [, ttl_seconds]) */
static int
l_state_set(lua_State *L)
{
    struct script_ctx *c = script_ctx(L);
    struct state_req rq = {0};
    rq.op = STATE_SET;
    rq.ttl = luaL_optnumber(L, 3, 0);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        rq.type = KV_NUMBER;
        rq.num = lua_tonumber(L, 2);
    } else if (lua_type(L, 2) == LUA_TSTRING) {
        rq.type = KV_STRING;
        rq.str = lua_tolstring(L, 2, &rq.len);
        luaL_argcheck(L, rq.len <= 64 * 1024, 2, "value over 64 KiB");
    } else if (lua_isnil(L, 2)) {
        rq.type = KV_NONE;
    } else {
        return luaL_argerror(L, 2, "a string or a number");
    }
    rq.key = state_key(L, c, &rq.klen);
    return state_call(L, &rq);
}

/* emu.state.incr(key [, by [, ttl]]) -> new value; the ttl is set when
 * the counter is created (a fixed window). */
static int
l_state_incr(lua_State *L)
{
    struct script_ctx *c = script_ctx(L);
    struct state_req rq = {0};
    rq.op = STATE_INCR;
    rq.num = luaL_optnumber(L, 2, 1);
    rq.ttl = luaL_optnumber(L, 3, 0);
    rq.key = state_key(L, c, &rq.klen);
    return state_call(L, &rq);
}

static int
l_state_del(lua_State *L)
{
    struct script_ctx *c = script_ctx(L);
    struct state_req rq = {0};
    rq.op = STATE_DEL;
    rq.key = state_key(L, c, &rq.klen);
    return state_call(L, &rq);
}

/* ---- emu.net ---- */

static struct cidr_list *
check_cidrs(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, CIDRS_MT);
}

static int
cidrs_gc(lua_State *L)
{
    cidr_list_cleanup(check_cidrs(L, 1));
    return 0;
}

/* emu.net.cidrs("10.0.0.0/8,192.0.2.7") or ({...}) -> a set. */
static int
l_cidrs(lua_State *L)
{
    struct buf b = {0};
    if (lua_istable(L, 1)) {
        lua_Integer n = luaL_len(L, 1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 1, i);
            size_t l;
            const char *s = lua_tolstring(L, -1, &l);
            if (s == NULL || (i > 1 && buf_append_char(&b, ',') < 0) ||
                buf_append(&b, s, l) < 0) {
                buf_cleanup(&b);
                return luaL_error(L,
                                  "emu.net.cidrs: item %d is not a "
                                  "string",
                                  (int)i);
            }
            lua_pop(L, 1);
        }
    } else {
        size_t l;
        const char *s = luaL_checklstring(L, 1, &l);
        if (buf_append(&b, s, l) < 0)
            return luaL_error(L, "not enough memory");
    }
    struct cidr_list *cl = lua_newuserdatauv(L, sizeof(*cl), 0);
    memset(cl, 0, sizeof(*cl));
    luaL_setmetatable(L, CIDRS_MT);
    size_t at = 0, bl = 0;
    int rc = cidr_list_parse(b.data ? b.data : "", b.len, cl, &at, &bl);
    if (rc < 0) {
        lua_pushfstring(L, "not an address or CIDR: '%s'",
                        lua_pushlstring(L, b.data + at, bl));
        buf_cleanup(&b);
        return lua_error(L);
    }
    buf_cleanup(&b);
    return 1;
}

static int
parse_ip_arg(lua_State *L, int idx, struct ip_addr *a)
{
    size_t l;
    const char *s = luaL_checklstring(L, idx, &l);
    return ip_parse(s, l, a);
}

static int
cidrs_contains(lua_State *L)
{
    struct cidr_list *cl = check_cidrs(L, 1);
    struct ip_addr a;
    lua_pushboolean(L, parse_ip_arg(L, 2, &a) == 0 && cidr_list_match(cl, &a));
    return 1;
}

/* emu.net.match(ip, "10.0.0.0/8,..." | {..} | set) */
static int
l_net_match(lua_State *L)
{
    if (!luaL_testudata(L, 2, CIDRS_MT)) {
        lua_pushcfunction(L, l_cidrs);
        lua_pushvalue(L, 2);
        lua_call(L, 1, 1);
        lua_replace(L, 2);
    }
    lua_settop(L, 2);
    lua_insert(L, 1);
    return cidrs_contains(L);
}

/* emu.net.prefix(ip, v4bits, v6bits) -> "192.0.2.0" (greylisting keys). */
static int
l_net_prefix(lua_State *L)
{
    struct ip_addr a;
    if (parse_ip_arg(L, 1, &a) < 0)
        return luaL_error(L, "emu.net.prefix: not an address: '%s'",
                          lua_tostring(L, 1));
    lua_Integer b4 = luaL_optinteger(L, 2, 24);
    lua_Integer b6 = luaL_optinteger(L, 3, 64);
    lua_Integer bits = a.family == 4 ? b4 : b6;
    luaL_argcheck(L, bits >= 0 && bits <= (a.family == 4 ? 32 : 128),
                  a.family == 4 ? 2 : 3, "prefix length out of range");
    ip_mask(&a, (unsigned)bits);
    char out[IP_STR_MAX];
    ip_format(&a, out, sizeof(out));
    lua_pushstring(L, out);
    return 1;
}

static int
l_net_valid(lua_State *L)
{
    struct ip_addr a;
    lua_pushboolean(L, parse_ip_arg(L, 1, &a) == 0);
    return 1;
}

/* emu.addr.parse("user@example.com") -> {local_part, domain} or nil. */
static int
l_addr_parse(lua_State *L)
{
    size_t l;
    const char *s = luaL_checklstring(L, 1, &l);
    if (l >= 2 && s[0] == '<' && s[l - 1] == '>') {
        s++;
        l -= 2;
    }
    struct smtp_path p;
    if (smtp_parse_mailbox(s, l, &p) != PARSE_OK) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, s, l);
    lua_setfield(L, -2, "address");
    lua_pushlstring(L, p.local, p.local_len);
    lua_setfield(L, -2, "local_part");
    lua_pushlstring(L, p.domain ? p.domain : "", p.domain_len);
    lua_setfield(L, -2, "domain");
    return 1;
}

static const luaL_Reg emu_funcs[] = {
    {"reply", l_reply},
    {"_name_params", l_name_params},
    {"_header", l_header},
    {"_decision", l_decision},
    {"now", l_now},
    {"utc", l_utc},
    {"random", l_random},
    {"random_hex", l_random_hex},
    {"random_string", l_random_string},
    {"log", l_log},
    {"base64_encode", l_b64enc},
    {"base64_decode", l_b64dec},
    {"lib", l_lib},
    {"_scenario", l_scenario_chunk},
    {NULL, NULL},
};

static const luaL_Reg state_funcs[] = {
    {"get", l_state_get}, {"set", l_state_set}, {"incr", l_state_incr},
    {"del", l_state_del}, {NULL, NULL},
};

static const luaL_Reg net_funcs[] = {
    {"cidrs", l_cidrs},     {"match", l_net_match}, {"prefix", l_net_prefix},
    {"valid", l_net_valid}, {NULL, NULL},
};

static const luaL_Reg addr_funcs[] = {
    {"parse", l_addr_parse},
    {NULL, NULL},
};

int
script_api_open(lua_State *L)
{
    struct script_ctx *c = script_ctx(L);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->func; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    /* Nothing that reads files, loads code, or steers the collector. */
    static const char *const removed[] = {"dofile",  "loadfile",       "load",
                                          "require", "collectgarbage", "warn",
                                          NULL};
    for (const char *const *r = removed; *r; r++) {
        lua_pushnil(L);
        lua_setglobal(L, *r);
    }
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    /* Reproducible math.random under --seed. */
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, (lua_Integer)c->emu->cfg->seed);
    lua_call(L, 1, 0);
    lua_pop(L, 1);

    luaL_newlib(L, emu_funcs);
    int emu = lua_gettop(L);
    luaL_newlib(L, state_funcs);
    lua_setfield(L, emu, "state");
    luaL_newlib(L, net_funcs);
    lua_setfield(L, emu, "net");
    luaL_newlib(L, addr_funcs);
    lua_setfield(L, emu, "addr");
    lua_pushinteger(L, 1);
    lua_setfield(L, emu, "api_version");
    lua_pushstring(L, c->emu->hostname);
    lua_setfield(L, emu, "hostname");

    luaL_newmetatable(L, DECISION_MT);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, emu, "_decision_methods");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, SESSION_MT);
    lua_createtable(L, 0, (int)EMU_ARRAY_LEN(session_fields));
    for (size_t i = 0; i < EMU_ARRAY_LEN(session_fields); i++) {
        lua_pushinteger(L, session_fields[i].f);
        lua_setfield(L, -2, session_fields[i].name);
    }
    lua_pushvalue(L, -2); /* the metatable itself */
    lua_pushcclosure(L, session_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, session_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, session_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaL_newmetatable(L, CIDRS_MT);
    lua_pushcfunction(L, cidrs_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    lua_pushcfunction(L, cidrs_contains);
    lua_setfield(L, -2, "contains");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, emu, "_message_methods");
    lua_pushcclosure(L, message_index, 1);
    lua_setfield(L, -2, "__index");
    lua_setfield(L, LUA_REGISTRYINDEX, "emu.message_mt");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "emu.libs");
    lua_pushvalue(L, emu);
    lua_setfield(L, LUA_REGISTRYINDEX, "emu.api");

    /* The Lua half of the library. It sees the full globals once, then
     * builds the frozen table scenarios read through their _ENV. */
    size_t len = 0;
    char *text = scenario_lib_text(c->emu, "prelude", &len);
    if (text == NULL)
        return luaL_error(L, "lua/prelude.lua is missing");
    int rc = luaL_loadbufferx(L, text, len, "@lua/prelude.lua", "t");
    emu_free(text);
    if (rc != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, emu);
    lua_call(L, 1, 0);
    lua_settop(L, 0);
    return 0;
}
