/*
 * state: the emu.state back ends. Memory: the shared kv store, answered at
 * once. Redis: one script per operation, so the expiry check and the update
 * happen atomically in Redis for every replica. A script is sent by its
 * SHA1 (EVALSHA), and in full (EVAL, which also caches it in Redis) only
 * when Redis answers NOSCRIPT: after a restart or SCRIPT FLUSH. Values are
 * stored as
 * "n|EXPIRES|NUMBER" or "s|EXPIRES|BYTES" with EXPIRES on the scenario
 * clock (0: never) and a real Redis TTL an hour past it as a safety net.
 * Keys are PREFIX + "scenario/key"; the clock offset is PREFIX +
 * "clock-offset". Worker 0 polls the offset every 200 ms.
 */
#include "state.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "net.h"
#include "util.h"

#define SAFETY_SECONDS 3600.0

/* SHA1 of a script in hex, as EVALSHA wants it. */
#define SHA1_HEX 40

struct state {
    struct emu *e;
    struct net *net;
    struct net_redis *redis; /* NULL: memory */
    struct net_timer *clock_timer;
    bool was_up;
    char sha_get[SHA1_HEX + 1]; /* of lua_get */
    char sha_incr[SHA1_HEX + 1];
};

/* ---- Redis scripts ---- */

static const char lua_get[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return false end\n"
    "local e = tonumber(string.match(v, '^.|([^|]*)|'))\n"
    "if e and e > 0 and tonumber(ARGV[1]) >= e then\n"
    "  redis.call('DEL', KEYS[1]) return false end\n"
    "return v\n";

static const char lua_incr[] =
    "local now, by, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), "
    "tonumber(ARGV[3])\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "local e, n = 0, 0\n"
    "if v then\n"
    "  local t, es, rest = string.match(v, '^(.)|([^|]*)|(.*)$')\n"
    "  if t ~= 'n' then return redis.error_reply('not a number') end\n"
    "  e = tonumber(es)\n"
    "  if e > 0 and now >= e then v = nil else n = tonumber(rest) end\n"
    "end\n"
    "if not v then e = 0; if ttl > 0 then e = now + ttl end end\n"
    "n = n + by\n"
    "local s = 'n|' .. string.format('%.3f', e) .. '|' .. "
    "string.format('%.17g', n)\n"
    "if e > 0 then redis.call('SET', KEYS[1], s, 'PX', "
    "math.floor((ttl + 3600) * 1000))\n"
    "else redis.call('SET', KEYS[1], s) end\n"
    "return string.format('%.17g', n)\n";

/* Every scenario key with its value; ARGV[1] is the prefix. KEYS takes a
 * glob: the prefix's own glob characters are escaped ("ci[1]:" must not
 * match "ci1:"), and each key is checked to start with it. */
#define LUA_PREFIX_KEYS                                                        \
    "local p = ARGV[1]\n"                                                      \
    "local pat = string.gsub(p, '([%*%?%[%]\\\\])', '\\\\%1') .. '*'\n"        \
    "local function ours(k)\n"                                                 \
    "  return string.sub(k, 1, #p) == p and "                                  \
    "string.find(k, '/', #p + 1, true) end\n"

static const char lua_list[] = LUA_PREFIX_KEYS
    "local out = {}\n"
    "for _, k in ipairs(redis.call('KEYS', pat)) do\n"
    "  local v = redis.call('GET', k)\n"
    "  if v and ours(k) then out[#out + 1] = k; out[#out + 1] = v end\n"
    "end\n"
    "return out\n";

static const char lua_clear[] =
    LUA_PREFIX_KEYS "local n = 0\n"
                    "for _, k in ipairs(redis.call('KEYS', pat)) do\n"
                    "  if ours(k) then redis.call('DEL', k); n = n + 1 end\n"
                    "end\n"
                    "return n\n";

/* ---- helpers ---- */

static int
sha1_hex(const char *text, size_t len, char out[SHA1_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(text, len, md, &n, EVP_sha1(), NULL) || n != 20)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[SHA1_HEX] = '\0';
    return 0;
}

static int
full_key(struct state *st, const char *key, size_t klen, struct buf *out)
{
    const char *prefix = st->e->cfg->state_prefix;
    return buf_append_str(out, prefix) || buf_append(out, key, klen);
}

/* Parse "t|EXPIRES|VALUE" into a result; -1 when malformed. */
static int
decode(const char *v, size_t len, double now, struct state_result *res)
{
    if (len < 4 || (v[0] != 'n' && v[0] != 's') || v[1] != '|')
        return -1;
    const char *bar = memchr(v + 2, '|', len - 2);
    if (bar == NULL)
        return -1;
    char num[64];
    size_t el = (size_t)(bar - (v + 2));
    if (el >= sizeof(num))
        return -1;
    memcpy(num, v + 2, el);
    num[el] = '\0';
    double exp = strtod(num, NULL);
    if (exp > 0 && now >= exp) {
        res->type = KV_NONE;
        return 0;
    }
    const char *val = bar + 1;
    size_t vl = len - (size_t)(val - v);
    if (v[0] == 'n') {
        if (vl >= sizeof(num))
            return -1;
        memcpy(num, val, vl);
        num[vl] = '\0';
        res->type = KV_NUMBER;
        res->num = strtod(num, NULL);
    } else {
        res->type = KV_STRING;
        res->str = val;
        res->len = vl;
    }
    return 0;
}

/* ---- memory ---- */

static int
memory_request(struct state *st, const struct state_req *rq, double now,
               state_fn *fn, void *arg)
{
    struct kv *kv = st->e->kv;
    struct state_result res = {0};
    struct buf key = {0};
    if (buf_append(&key, rq->key, rq->klen) < 0) {
        res.err = "out of memory";
        fn(&res, arg);
        return 1;
    }
    struct kv_value v;
    switch (rq->op) {
    case STATE_GET:
        if (kv_get(kv, key.data, key.len, now, &v) < 0) {
            res.err = "out of memory";
        } else {
            res.type = v.type;
            res.num = v.num;
            res.str = v.str;
            res.len = v.len;
        }
        fn(&res, arg);
        if (res.err == NULL)
            emu_free(v.str);
        buf_cleanup(&key);
        return 1;
    case STATE_SET: {
        int rc = 0;
        if (rq->type == KV_NUMBER)
            rc = kv_set_number(kv, key.data, key.len, rq->num, rq->ttl, now);
        else if (rq->type == KV_STRING)
            rc = kv_set_string(kv, key.data, key.len, rq->str, rq->len, rq->ttl,
                               now);
        else
            kv_del(kv, key.data, key.len);
        if (rc < 0)
            res.err = "emu.state is full or out of memory";
        break;
    }
    case STATE_INCR:
        if (kv_incr(kv, key.data, key.len, rq->num, rq->ttl, false, now,
                    &res.num) < 0)
            res.err = "not a number, or the store is full";
        res.type = KV_NUMBER;
        break;
    case STATE_DEL:
        res.deleted = kv_del(kv, key.data, key.len);
        break;
    }
    buf_cleanup(&key);
    fn(&res, arg);
    return 1;
}

/* ---- Redis ---- */

struct pending {
    struct state *st;
    struct state_req rq; /* key and string copied */
    char *key, *str;
    double now;
    state_fn *fn;
    void *arg;
    bool sent_in_full; /* the script went as EVAL (after NOSCRIPT) */
};

static int redis_send(struct pending *p);

static void
pending_free(struct pending *p)
{
    emu_free(p->key);
    emu_free(p->str);
    emu_free(p);
}

static void
on_redis(const struct net_redis_reply *reply, const char *err, void *arg)
{
    struct pending *p = arg;
    struct state *st = p->st;
    struct state_result res = {0};
    if (err && reply == NULL) {
        /* Unreachable, lost or too slow (an error reply is the script's
         * own complaint, such as incr on a string, and is not retried). */
        metrics_inc(&st->e->metrics.state_errors);
        if (st->e->cfg->state_fallback_memory) {
            metrics_inc(&st->e->metrics.state_fallbacks);
            p->rq.key = p->key;
            p->rq.str = p->str;
            memory_request(st, &p->rq, p->now, p->fn, p->arg);
            pending_free(p);
            return;
        }
        res.err = err;
        res.unavailable = true;
        p->fn(&res, p->arg);
        pending_free(p);
        return;
    }
    if (err && reply->type == NR_ERROR && !p->sent_in_full &&
        (p->rq.op == STATE_GET || p->rq.op == STATE_INCR) && reply->len >= 8 &&
        memcmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* Redis does not know the script (yet, or any more): send it
         * whole once; EVAL caches it for the next EVALSHA. The retry gets
         * its own timeout. redis_send may call on_redis for p at once. */
        p->sent_in_full = true;
        redis_send(p);
        return;
    }
    if (err) {
        res.err = err;
        p->fn(&res, p->arg);
        pending_free(p);
        return;
    }
    switch (p->rq.op) {
    case STATE_GET:
        if (reply->type == NR_STRING &&
            decode(reply->str, reply->len, p->now, &res) < 0)
            res.err = "a value in Redis is not in this emulator's format";
        break;
    case STATE_INCR:
        res.type = KV_NUMBER;
        res.num = reply->type == NR_STRING ? strtod(reply->str, NULL) : 0;
        break;
    case STATE_DEL:
        res.deleted = reply->type == NR_INTEGER && reply->integer > 0;
        break;
    case STATE_SET:
        break;
    }
    p->fn(&res, p->arg);
    pending_free(p);
}

/* Send p's command (again, after NOSCRIPT). Returns what
 * net_redis_command returns: 1 when on_redis has already run for p. */
static int
redis_send(struct pending *p)
{
    struct state *st = p->st;
    const struct state_req *rq = &p->rq;
    double now = p->now;
    struct buf key = {0};
    if (full_key(st, p->key, rq->klen, &key) < 0) {
        buf_cleanup(&key);
        struct state_result res = {.err = "out of memory"};
        p->fn(&res, p->arg);
        pending_free(p);
        return 1;
    }
    char nowbuf[40], a2[40], a3[40];
    snprintf(nowbuf, sizeof(nowbuf), "%.3f", now);
    const char *argv[8];
    size_t lens[8];
    int argc = 0;
#define ARG(s, l) (argv[argc] = (s), lens[argc] = (l), argc++)
    struct buf val = {0};
    switch (rq->op) {
    case STATE_GET:
        if (p->sent_in_full) {
            ARG("EVAL", 4);
            ARG(lua_get, sizeof(lua_get) - 1);
        } else {
            ARG("EVALSHA", 7);
            ARG(st->sha_get, SHA1_HEX);
        }
        ARG("1", 1);
        ARG(key.data, key.len);
        ARG(nowbuf, strlen(nowbuf));
        break;
    case STATE_INCR:
        snprintf(a2, sizeof(a2), "%.17g", rq->num);
        snprintf(a3, sizeof(a3), "%.3f", rq->ttl > 0 ? rq->ttl : 0);
        if (p->sent_in_full) {
            ARG("EVAL", 4);
            ARG(lua_incr, sizeof(lua_incr) - 1);
        } else {
            ARG("EVALSHA", 7);
            ARG(st->sha_incr, SHA1_HEX);
        }
        ARG("1", 1);
        ARG(key.data, key.len);
        ARG(nowbuf, strlen(nowbuf));
        ARG(a2, strlen(a2));
        ARG(a3, strlen(a3));
        break;
    case STATE_DEL:
        ARG("DEL", 3);
        ARG(key.data, key.len);
        break;
    case STATE_SET:
        if (rq->type == KV_NONE) {
            ARG("DEL", 3);
            ARG(key.data, key.len);
            break;
        }
        buf_printf(&val, "%c|%.3f|", rq->type == KV_NUMBER ? 'n' : 's',
                   rq->ttl > 0 ? now + rq->ttl : 0.0);
        if (rq->type == KV_NUMBER)
            buf_printf(&val, "%.17g", rq->num);
        else
            buf_append(&val, p->str, rq->len);
        ARG("SET", 3);
        ARG(key.data, key.len);
        ARG(val.data ? val.data : "", val.len);
        if (rq->ttl > 0) {
            snprintf(a3, sizeof(a3), "%lld",
                     (long long)((rq->ttl + SAFETY_SECONDS) * 1000));
            ARG("PX", 2);
            ARG(a3, strlen(a3));
        }
        break;
    }
#undef ARG
    int rc = net_redis_command(st->redis, on_redis, p, argc, argv, lens);
    buf_cleanup(&key);
    buf_cleanup(&val);
    return rc;
}

static int
redis_request(struct state *st, const struct state_req *rq, double now,
              state_fn *fn, void *arg)
{
    struct pending *p = emu_calloc(1, sizeof(*p));
    if (p == NULL) {
        struct state_result res = {.err = "out of memory"};
        fn(&res, arg);
        return 1;
    }
    p->st = st;
    p->rq = *rq;
    p->key = emu_strndup(rq->key, rq->klen);
    p->str = rq->str ? emu_strndup(rq->str, rq->len) : NULL;
    p->now = now;
    p->fn = fn;
    p->arg = arg;
    if (p->key == NULL || (rq->str && p->str == NULL)) {
        pending_free(p);
        struct state_result res = {.err = "out of memory"};
        fn(&res, arg);
        return 1;
    }
    p->rq.key = p->key;
    p->rq.str = p->str;
    return redis_send(p);
}

/* ---- the clock ---- */

static void
on_clock(const struct net_redis_reply *reply, const char *err, void *arg)
{
    struct state *st = arg;
    if (err || reply == NULL || reply->type != NR_STRING)
        return; /* absent or Redis down: keep what we have */
    char tmp[64];
    size_t n = reply->len < sizeof(tmp) - 1 ? reply->len : sizeof(tmp) - 1;
    memcpy(tmp, reply->str, n);
    tmp[n] = '\0';
    double v = strtod(tmp, NULL);
    if (isfinite(v))
        atomic_store(&st->e->clock_offset, v);
}

static void
clock_key(struct state *st, struct buf *b)
{
    buf_printf(b, "%sclock-offset", st->e->cfg->state_prefix);
}

static void
poll_clock(void *arg)
{
    struct state *st = arg;
    struct buf key = {0};
    clock_key(st, &key);
    const char *argv[2] = {"GET", key.data ? key.data : ""};
    size_t lens[2] = {3, key.len};
    net_redis_command(st->redis, on_clock, st, 2, argv, lens);
    buf_cleanup(&key);
    net_timer_start(st->clock_timer, 0.2);
}

static void
on_redis_state(bool up, const char *err, void *arg)
{
    struct state *st = arg;
    if (up != st->was_up || !up) {
        if (up)
            log_msg(st->e->log, LOG_LEVEL_INFO, "redis", "connected to %s",
                    st->e->cfg->state_url);
        else if (st->was_up || st->e->cfg->state_url)
            log_msg(st->e->log, LOG_LEVEL_WARN, "redis",
                    "no connection to %s: %s (retrying every second)",
                    st->e->cfg->state_url, err ? err : "?");
    }
    st->was_up = up;
}

struct state *
state_new(struct emu *e, struct net *n, bool poll, char *err, size_t errlen)
{
    struct state *st = emu_calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->e = e;
    st->net = n;
    const char *url = e->cfg->state_url;
    if (url == NULL)
        return st;
    if (sha1_hex(lua_get, sizeof(lua_get) - 1, st->sha_get) < 0 ||
        sha1_hex(lua_incr, sizeof(lua_incr) - 1, st->sha_incr) < 0) {
        snprintf(err, errlen, "--state: SHA1 is not available");
        emu_free(st);
        return NULL;
    }
    char host[REDIS_HOST_MAX];
    uint16_t port;
    unsigned db;
    if (config_parse_redis_url(url, host, sizeof(host), &port, &db) < 0) {
        snprintf(err, errlen, "--state: bad URL '%s'", url);
        emu_free(st);
        return NULL;
    }
    st->redis = net_redis_new(n, host, port, db, e->cfg->state_timeout,
                              on_redis_state, st);
    if (st->redis == NULL) {
        snprintf(err, errlen, "out of memory");
        emu_free(st);
        return NULL;
    }
    if (poll) {
        st->clock_timer = net_timer_new(n, poll_clock, st);
        if (st->clock_timer)
            net_timer_start(st->clock_timer, 0.05);
    }
    return st;
}

void
state_free(struct state *st)
{
    if (st == NULL)
        return;
    net_timer_free(st->clock_timer);
    net_redis_free(st->redis);
    emu_free(st);
}

bool
state_is_async(const struct state *st)
{
    return st && st->redis != NULL;
}

int
state_request(struct state *st, const struct state_req *rq, double now,
              state_fn *fn, void *arg)
{
    if (st->redis == NULL)
        return memory_request(st, rq, now, fn, arg);
    return redis_request(st, rq, now, fn, arg);
}

/* ---- the API's view ---- */

struct api_call {
    struct state *st;
    state_list_fn *each;
    state_done_fn *done;
    void *arg;
    double now;
    double seconds; /* the clock: what to set or add */
    bool relative;
};

static void
on_list(const struct net_redis_reply *reply, const char *err, void *arg)
{
    struct api_call *c = arg;
    size_t plen = strlen(c->st->e->cfg->state_prefix);
    if (err == NULL && reply && reply->type == NR_ARRAY) {
        for (size_t i = 0; i + 1 < reply->n; i += 2) {
            const struct net_redis_reply *k = &reply->elems[i];
            const struct net_redis_reply *v = &reply->elems[i + 1];
            struct state_result res = {0};
            if (k->len <= plen || decode(v->str, v->len, c->now, &res) < 0 ||
                res.type == KV_NONE)
                continue;
            struct kv_value kvv = {res.type, res.num, (char *)res.str, res.len,
                                   0};
            /* The expiry is in the encoded value. */
            const char *bar = memchr(v->str + 2, '|', v->len - 2);
            if (bar) {
                char num[64];
                size_t el = (size_t)(bar - (v->str + 2));
                if (el < sizeof(num)) {
                    memcpy(num, v->str + 2, el);
                    num[el] = '\0';
                    kvv.expires = strtod(num, NULL);
                }
            }
            c->each(k->str + plen, k->len - plen, &kvv, c->arg);
        }
    }
    c->done(err, c->arg);
    emu_free(c);
}

static void
on_simple(const struct net_redis_reply *reply, const char *err, void *arg)
{
    (void)reply;
    struct api_call *c = arg;
    c->done(err, c->arg);
    emu_free(c);
}

struct each_ctx {
    state_list_fn *each;
    void *arg;
};

static void
each_kv(const char *key, size_t klen, const struct kv_value *v, void *arg)
{
    struct each_ctx *x = arg;
    x->each(key, klen, v, x->arg);
}

int
state_list(struct state *st, double now, state_list_fn *each,
           state_done_fn *done, void *arg)
{
    if (st->redis == NULL) {
        struct each_ctx x = {each, arg};
        kv_each(st->e->kv, now, each_kv, &x);
        done(NULL, arg);
        return 1;
    }
    struct api_call *c = emu_calloc(1, sizeof(*c));
    if (c == NULL) {
        done("out of memory", arg);
        return 1;
    }
    *c = (struct api_call){st, each, done, arg, now, 0, false};
    const char *prefix = st->e->cfg->state_prefix;
    const char *argv[4] = {"EVAL", lua_list, "0", prefix};
    size_t lens[4] = {4, sizeof(lua_list) - 1, 1, strlen(prefix)};
    return net_redis_command(st->redis, on_list, c, 4, argv, lens);
}

int
state_clear(struct state *st, state_done_fn *done, void *arg)
{
    if (st->redis == NULL) {
        kv_clear(st->e->kv);
        done(NULL, arg);
        return 1;
    }
    struct api_call *c = emu_calloc(1, sizeof(*c));
    if (c == NULL) {
        done("out of memory", arg);
        return 1;
    }
    *c = (struct api_call){st, NULL, done, arg, 0, 0, false};
    const char *prefix = st->e->cfg->state_prefix;
    const char *argv[4] = {"EVAL", lua_clear, "0", prefix};
    size_t lens[4] = {4, sizeof(lua_clear) - 1, 1, strlen(prefix)};
    return net_redis_command(st->redis, on_simple, c, 4, argv, lens);
}

/* SET or INCRBYFLOAT answered: INCRBYFLOAT's sum is the offset to keep.
 * With Redis away and --state-fallback memory, the clock moves here only,
 * as the fallback's keys live here only. */
static void
on_clock_set(const struct net_redis_reply *reply, const char *err, void *arg)
{
    struct api_call *c = arg;
    struct emu *e = c->st->e;
    if (err == NULL && c->relative) {
        on_clock(reply, NULL, c->st);
    } else if (err && reply == NULL && e->cfg->state_fallback_memory) {
        metrics_inc(&e->metrics.state_errors);
        metrics_inc(&e->metrics.state_fallbacks);
        double base = c->relative ? atomic_load(&e->clock_offset) : 0;
        atomic_store(&e->clock_offset, base + c->seconds);
        err = NULL;
    }
    c->done(err, c->arg);
    emu_free(c);
}

int
state_clock_set(struct state *st, double seconds, bool relative,
                state_done_fn *done, void *arg)
{
    if (st->redis == NULL) {
        if (relative)
            seconds += atomic_load(&st->e->clock_offset);
        atomic_store(&st->e->clock_offset, seconds);
        done(NULL, arg);
        return 1;
    }
    struct api_call *c = emu_calloc(1, sizeof(*c));
    if (c == NULL) {
        done("out of memory", arg);
        return 1;
    }
    *c = (struct api_call){st, NULL, done, arg, 0, seconds, relative};
    struct buf key = {0};
    clock_key(st, &key);
    char v[64];
    snprintf(v, sizeof(v), "%.6f", seconds);
    /* Advancing adds in Redis, so two replicas moving the clock at once
     * both count; INCRBYFLOAT answers the sum, which becomes ours. */
    const char *argv[3] = {relative ? "INCRBYFLOAT" : "SET",
                           key.data ? key.data : "", v};
    size_t lens[3] = {relative ? 11 : 3, key.len, strlen(v)};
    if (!relative)
        atomic_store(&st->e->clock_offset, seconds);
    int rc = net_redis_command(st->redis, on_clock_set, c, 3, argv, lens);
    buf_cleanup(&key);
    return rc;
}
