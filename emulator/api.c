/*
 * api: routes of the control API. JSON in and out through jansson; errors
 * are {"error": "..."} with a 4xx status. Everything is read from the
 * store, the state store and the scenario registry under their locks, and
 * copied out before the reply is built. Long-polling (?wait=) requests
 * wait in a list that a 50 ms timer re-checks, so nothing blocks the loop.
 * Client bytes that are not printable UTF-8 appear as \xNN (and a
 * backslash as \\) in JSON and in text transcripts.
 */
#include "api.h"
#include "api_body.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include "emu.h"
#include "kv.h"
#include "net.h"
#include "scenario.h"
#include "script.h"
#include "state.h"
#include "store.h"

#define API_MAX_BODY (64 * 1024)
#define WAIT_MAX 60.0

struct waiter {
    struct net_http_req *req;
    double deadline;
    unsigned count;
    struct waiter *next;
};

struct api {
    struct emu *e;
    struct net *net;
    struct net_http *http;
    struct net_timer *timer;
    struct waiter *waiters;
    char instance[256]; /* --instance-id, or the host name */
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

int
api_token_ok(const char *presented, const char *expected)
{
    /* Constant time over the expected length; the length itself is not
     * a secret worth hiding. */
    size_t pl = presented ? strlen(presented) : 0;
    size_t el = strlen(expected);
    unsigned char diff = (unsigned char)(pl != el);
    for (size_t i = 0; i < el; i++) {
        unsigned char a = i < pl ? (unsigned char)presented[i] : 0;
        diff |= a ^ (unsigned char)expected[i];
    }
    return diff == 0;
}

/* Printable UTF-8 passes; a backslash becomes \\, other bytes \xNN. */
static void
display(struct buf *out, const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf_append_char(out, (char)c);
            i++;
            continue;
        }
        if (c >= 0x80) {
            /* A whole valid sequence passes. */
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
            if (n && i + n <= len && utf8_valid(p + i, n)) {
                buf_append(out, p + i, n);
                i += n;
                continue;
            }
        }
        if (c == '\\')
            buf_append_str(out, "\\\\");
        else
            buf_printf(out, "\\x%02X", c);
        i++;
    }
    if (out->data == NULL)
        buf_reserve(out, 0);
}

static json_t *
jdisplay(const char *p, size_t len)
{
    struct buf b = {0};
    display(&b, p, len);
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    buf_cleanup(&b);
    return j ? j : json_null();
}

static json_t *
jstr(const char *s)
{
    return s ? jdisplay(s, strlen(s)) : json_null();
}

static void
iso_time(double t, char *out, size_t cap)
{
    time_t sec = (time_t)floor(t);
    int ms = (int)((t - (double)sec) * 1000.0);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", ms > 999 ? 999 : ms);
}

static json_t *
jtime(double t)
{
    if (t <= 0)
        return json_null();
    char b[40];
    iso_time(t, b, sizeof(b));
    return json_string(b);
}

static void
reply_json(struct net_http_req *r, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        net_http_reply(r, 503, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    net_http_reply(r, status, "application/json", s, strlen(s));
    free(s);
}

static void reply_error(struct net_http_req *r, int status, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

static void
reply_error(struct net_http_req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(r, status, json_pack("{s:s}", "error", msg));
}

/* A non-negative integer query parameter, or `def`. -1: malformed. */
static long
query_num(struct net_http_req *r, const char *key, long def, long max)
{
    const char *v = net_http_query(r, key);
    if (v == NULL)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || end == v || n < 0)
        return -1;
    return n > max ? max : n;
}

static bool
contains_ci(const char *hay, const char *needle)
{
    if (hay == NULL)
        return false;
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return true;
    return n == 0;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

static json_t *session_json(const struct store_session *r, bool transcript,
                            const char *instance);

/* Split transcript records into lines; a line's time is when its last
 * byte arrived. Client and server streams are kept apart, so a body that
 * came in several reads still gives whole lines. */
struct tline_cb {
    void (*fn)(void *arg, double t, char dir, const char *p, size_t len,
               const char *eol);
    void *arg;
};

static void
walk_transcript(const struct buf *tr, struct tline_cb *cb)
{
    struct buf partial[2] = {{0}, {0}}; /* client, server */
    double ptime[2] = {0, 0};
    char pdir[2] = {TR_CLIENT, TR_SERVER};
    size_t i = 0;
    while (tr->data && i + sizeof(double) + 1 + sizeof(uint32_t) <= tr->len) {
        double t;
        uint32_t len;
        memcpy(&t, tr->data + i, sizeof(t));
        char dir = tr->data[i + sizeof(t)];
        memcpy(&len, tr->data + i + sizeof(t) + 1, sizeof(len));
        const char *p = tr->data + i + sizeof(t) + 1 + sizeof(len);
        i += sizeof(t) + 1 + sizeof(len) + len;
        if (dir == TR_NOTE) {
            cb->fn(cb->arg, t, dir, p, len, NULL);
            continue;
        }
        int k = dir == TR_CLIENT ? 0 : 1;
        size_t s = 0;
        while (s < len) {
            const char *nl = memchr(p + s, '\n', len - s);
            size_t e = nl ? (size_t)(nl - p) : len;
            buf_append(&partial[k], p + s, e - s);
            ptime[k] = t;
            pdir[k] = dir;
            if (!nl)
                break;
            struct buf *b = &partial[k];
            bool crlf = b->len > 0 && b->data[b->len - 1] == '\r';
            cb->fn(cb->arg, t, dir, b->data ? b->data : "",
                   crlf ? b->len - 1 : b->len, crlf ? "crlf" : "lf");
            buf_reset(b, 4096);
            s = e + 1;
        }
    }
    for (int k = 0; k < 2; k++) {
        if (partial[k].len)
            cb->fn(cb->arg, ptime[k], pdir[k], partial[k].data, partial[k].len,
                   "none");
        buf_cleanup(&partial[k]);
    }
}

static void
tline_json(void *arg, double t, char dir, const char *p, size_t len,
           const char *eol)
{
    json_t *arr = arg;
    json_t *o = json_object();
    json_object_set_new(o, "time", jtime(t));
    json_object_set_new(o, "dir",
                        json_string(dir == TR_CLIENT ? "client"
                                    : dir == TR_SERVER || dir == TR_SCENARIO
                                        ? "server"
                                        : "note"));
    if (dir == TR_SCENARIO)
        json_object_set_new(o, "scenario", json_true());
    json_object_set_new(o, "line", jdisplay(p, len));
    if (eol && strcmp(eol, "crlf") != 0)
        json_object_set_new(o, "eol", json_string(eol));
    json_array_append_new(arr, o);
}

static void
tline_text(void *arg, double t, char dir, const char *p, size_t len,
           const char *eol)
{
    (void)t;
    struct buf *out = arg;
    buf_append_str(out, dir == TR_CLIENT                         ? "C: "
                        : dir == TR_SERVER || dir == TR_SCENARIO ? "S: "
                                                                 : "# ");
    display(out, p, len);
    /* A line that did not end in CRLF says so. */
    if (eol && strcmp(eol, "lf") == 0)
        buf_append_str(out, "\\n");
    buf_append_char(out, '\n');
}

static json_t *
session_json(const struct store_session *r, bool transcript,
             const char *instance)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)r->id));
    json_object_set_new(o, "instance", json_string(instance));
    json_object_set_new(o, "client",
                        json_pack("{s:s,s:i}", "address", r->client_ip, "port",
                                  (int)r->client_port));
    json_object_set_new(o, "peer",
                        json_pack("{s:s,s:i}", "address", r->peer_ip, "port",
                                  (int)r->peer_port));
    json_object_set_new(o, "simulated",
                        json_boolean(strcmp(r->client_ip, r->peer_ip) != 0 ||
                                     r->client_port != r->peer_port));
    json_object_set_new(o, "listener", json_string(r->listener));
    json_object_set_new(o, "scenario", jstr(r->scenario));
    json_object_set_new(o, "helo", jstr(r->helo));
    if (r->tls) {
        json_t *t = json_pack("{s:s,s:s}", "version", r->tls_version, "cipher",
                              r->tls_cipher);
        if (r->client_cert) {
            json_t *c = json_object();
            json_object_set_new(c, "subject", jstr(r->cert_subject));
            json_object_set_new(c, "issuer", jstr(r->cert_issuer));
            json_t *sans = json_array();
            const char *p = r->cert_sans ? r->cert_sans : "";
            while (*p) {
                const char *e = strchr(p, ',');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                json_array_append_new(sans, jdisplay(p, l));
                p += l + (e ? 1 : 0);
            }
            json_object_set_new(c, "sans", sans);
            json_object_set_new(c, "verified", json_boolean(r->cert_verified));
            json_object_set_new(c, "error", jstr(r->cert_error));
            json_object_set_new(t, "client_cert", c);
        } else {
            json_object_set_new(t, "client_cert", json_null());
        }
        json_object_set_new(o, "tls", t);
    } else {
        json_object_set_new(o, "tls", json_null());
    }
    if (r->auth_user)
        json_object_set_new(o, "auth",
                            json_pack("{s:o,s:o}", "mechanism",
                                      jstr(r->auth_mech), "user",
                                      jstr(r->auth_user)));
    else
        json_object_set_new(o, "auth", json_null());
    json_object_set_new(o, "start", jtime(r->start));
    json_object_set_new(o, "end", jtime(r->end));
    json_t *out = json_object();
    json_object_set_new(out, "result", json_string(r->outcome));
    if (r->outcome_code)
        json_object_set_new(out, "code", json_integer(r->outcome_code));
    if (r->outcome_stage[0])
        json_object_set_new(out, "stage", json_string(r->outcome_stage));
    if (r->last_code)
        json_object_set_new(out, "last_code", json_integer(r->last_code));
    json_object_set_new(o, "outcome", out);
    json_object_set_new(o, "messages", json_integer(r->messages));
    if (transcript) {
        json_t *lines = json_array();
        struct tline_cb cb = {tline_json, lines};
        walk_transcript(&r->transcript, &cb);
        json_object_set_new(o, "transcript", lines);
        json_object_set_new(o, "transcript_truncated",
                            json_boolean(r->transcript_truncated));
    }
    return o;
}

static const struct store_session *
find_session(struct store *st, uint64_t id)
{
    for (struct store_session *r = st->sess_newest; r; r = r->older)
        if (r->id == id)
            return r;
    return NULL;
}

static void
get_sessions(struct api *a, struct net_http_req *r)
{
    long limit = query_num(r, "limit", 100, 10000);
    long since = query_num(r, "since", 0, LONG_MAX);
    const char *outcome = net_http_query(r, "outcome");
    if (limit < 0 || since < 0) {
        reply_error(r, 400, "limit and since must be whole numbers");
        return;
    }
    json_t *arr = json_array();
    struct store *st = &a->e->store;
    store_lock(st);
    long n = 0;
    for (struct store_session *s = st->sess_newest; s && n < limit;
         s = s->older) {
        if ((uint64_t)since >= s->id)
            continue;
        if (outcome && strcmp(outcome, s->outcome) != 0)
            continue;
        json_array_append_new(arr, session_json(s, false, a->instance));
        n++;
    }
    store_unlock(st);
    reply_json(r, 200, arr);
}

static void
get_session(struct api *a, struct net_http_req *r, uint64_t id, bool text)
{
    struct store *st = &a->e->store;
    store_lock(st);
    const struct store_session *s = find_session(st, id);
    if (s == NULL) {
        store_unlock(st);
        reply_error(r, 404, "no session %llu", (unsigned long long)id);
        return;
    }
    if (text) {
        struct buf out = {0};
        struct tline_cb cb = {tline_text, &out};
        walk_transcript(&s->transcript, &cb);
        store_unlock(st);
        net_http_reply(r, 200, "text/plain; charset=utf-8",
                       out.data ? out.data : "", out.len);
        buf_cleanup(&out);
        return;
    }
    json_t *j = session_json(s, true, a->instance);
    store_unlock(st);
    reply_json(r, 200, j);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* Headers of a message, unfolded, until the first empty line. */
static json_t *
headers_json(const char *m, size_t len, const char **subject,
             size_t *subject_len)
{
    json_t *arr = json_array();
    size_t i = 0;
    *subject = NULL;
    *subject_len = 0;
    json_t *last = NULL;
    struct buf val = {0};
    while (i < len) {
        const char *nl = memchr(m + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - m) : len;
        size_t le = end > i && m[end - 1] == '\r' ? end - 1 : end;
        if (le == i)
            break;
        if ((m[i] == ' ' || m[i] == '\t') && last) {
            const char *old = json_string_value(json_object_get(last, "value"));
            buf_reset(&val, 1 << 20);
            buf_append_str(&val, old ? old : "");
            struct buf add = {0};
            display(&add, m + i, le - i);
            buf_append(&val, add.data, add.len);
            buf_cleanup(&add);
            json_object_set_new(last, "value", json_stringn(val.data, val.len));
        } else {
            const char *colon = memchr(m + i, ':', le - i);
            if (colon == NULL)
                break;
            const char *v = colon + 1;
            while (v < m + le && (*v == ' ' || *v == '\t'))
                v++;
            last = json_object();
            json_object_set_new(last, "name",
                                jdisplay(m + i, (size_t)(colon - (m + i))));
            json_object_set_new(last, "value",
                                jdisplay(v, (size_t)(m + le - v)));
            json_array_append_new(arr, last);
            if ((size_t)(colon - (m + i)) == 7 &&
                strncasecmp(m + i, "subject", 7) == 0 && *subject == NULL) {
                *subject = v;
                *subject_len = (size_t)(m + le - v);
            }
        }
        i = nl ? end + 1 : len;
    }
    buf_cleanup(&val);
    return arr;
}

static json_t *
message_json(const struct store_msg *m, bool full, const char *instance)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(m->id));
    json_object_set_new(o, "instance", json_string(instance));
    json_object_set_new(o, "session", json_integer((json_int_t)m->session_id));
    json_object_set_new(o, "time", jtime(m->time));
    json_object_set_new(o, "from", jstr(m->mail_from));
    json_t *to = json_array();
    for (size_t i = 0; i < m->n_rcpts; i++)
        json_array_append_new(to, jstr(m->rcpts[i]));
    json_object_set_new(o, "to", to);
    json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    const char *subj;
    size_t sl;
    json_t *h = headers_json(m->data, m->size, &subj, &sl);
    json_object_set_new(o, "subject", subj ? jdisplay(subj, sl) : json_null());
    if (full) {
        json_object_set_new(o, "headers", h);
        json_object_set_new(o, "mail_params", jstr(m->mail_params));
        json_object_set_new(o, "helo", jstr(m->helo));
        json_object_set_new(o, "client", json_string(m->client_ip));
        json_object_set_new(o, "auth_user", jstr(m->auth_user));
        json_object_set_new(o, "tls", json_boolean(m->tls));
    } else {
        json_decref(h);
    }
    return o;
}

struct msg_filter {
    const char *from, *to, *subject;
    long session;
};

static bool
msg_matches(const struct store_msg *m, const struct msg_filter *f)
{
    if (f->session >= 0 && m->session_id != (uint64_t)f->session)
        return false;
    if (f->from && !contains_ci(m->mail_from, f->from))
        return false;
    if (f->to) {
        bool any = false;
        for (size_t i = 0; i < m->n_rcpts && !any; i++)
            any = contains_ci(m->rcpts[i], f->to);
        if (!any)
            return false;
    }
    if (f->subject) {
        const char *subj;
        size_t sl;
        json_t *h = headers_json(m->data, m->size, &subj, &sl);
        json_decref(h);
        char *s = subj ? emu_strndup(subj, sl) : NULL;
        bool ok = contains_ci(s, f->subject);
        emu_free(s);
        if (!ok)
            return false;
    }
    return true;
}

static int
msg_filter_of(struct net_http_req *r, struct msg_filter *f)
{
    f->from = net_http_query(r, "from");
    f->to = net_http_query(r, "to");
    f->subject = net_http_query(r, "subject");
    f->session = query_num(r, "session", -1, LONG_MAX);
    if (net_http_query(r, "session") && f->session < 0)
        return -1;
    return 0;
}

/* The matching messages, newest first; *n gets their number. */
static json_t *
list_messages(struct api *a, const struct msg_filter *f, long limit, size_t *n)
{
    json_t *arr = json_array();
    struct store *st = &a->e->store;
    *n = 0;
    store_lock(st);
    for (struct store_msg *m = st->msg_newest; m && (long)*n < limit;
         m = m->older) {
        if (msg_matches(m, f)) {
            json_array_append_new(arr, message_json(m, false, a->instance));
            (*n)++;
        }
    }
    store_unlock(st);
    return arr;
}

static void
answer_waiter(struct api *a, struct waiter *w, bool final)
{
    struct msg_filter f;
    msg_filter_of(w->req, &f);
    long limit = query_num(w->req, "limit", 1000, 100000);
    size_t n;
    json_t *arr = list_messages(a, &f, limit, &n);
    if (n >= w->count || final) {
        reply_json(w->req, 200, arr);
        w->req = NULL;
    } else {
        json_decref(arr);
    }
}

static void
on_wait_timer(void *arg)
{
    struct api *a = arg;
    double now = net_now(a->net);
    struct waiter **pp = &a->waiters;
    while (*pp) {
        struct waiter *w = *pp;
        if (net_http_req_gone(w->req)) {
            net_http_reply(w->req, 499, "text/plain", "", 0);
            w->req = NULL;
        } else {
            answer_waiter(a, w, now >= w->deadline);
        }
        if (w->req == NULL) {
            *pp = w->next;
            emu_free(w);
        } else {
            pp = &w->next;
        }
    }
    if (a->waiters)
        net_timer_start(a->timer, 0.05);
}

static void
get_messages(struct api *a, struct net_http_req *r)
{
    struct msg_filter f;
    long limit = query_num(r, "limit", 1000, 100000);
    const char *wait = net_http_query(r, "wait");
    long count = query_num(r, "count", 1, 100000);
    if (msg_filter_of(r, &f) < 0 || limit < 0 || count < 0) {
        reply_error(r, 400, "session, limit and count must be whole numbers");
        return;
    }
    if (wait) {
        char *end;
        double secs = strtod(wait, &end);
        if (*end || end == wait || !(secs >= 0)) {
            reply_error(r, 400, "wait must be a number of seconds");
            return;
        }
        struct waiter *w = emu_calloc(1, sizeof(*w));
        if (w == NULL) {
            reply_error(r, 503, "out of memory");
            return;
        }
        w->req = r;
        w->count = (unsigned)count;
        w->deadline = net_now(a->net) + (secs > WAIT_MAX ? WAIT_MAX : secs);
        answer_waiter(a, w, secs <= 0);
        if (w->req == NULL) {
            emu_free(w);
            return;
        }
        w->next = a->waiters;
        a->waiters = w;
        if (!net_timer_pending(a->timer))
            net_timer_start(a->timer, 0.05);
        return;
    }
    size_t n;
    reply_json(r, 200, list_messages(a, &f, limit, &n));
}

static void
get_message(struct api *a, struct net_http_req *r, const char *id, bool raw)
{
    struct store *st = &a->e->store;
    store_lock(st);
    struct store_msg *m = st->msg_newest;
    while (m && strcmp(m->id, id) != 0)
        m = m->older;
    if (m == NULL) {
        store_unlock(st);
        reply_error(r, 404, "no message %s", id);
        return;
    }
    if (raw) {
        char *copy = emu_malloc(m->size ? m->size : 1);
        size_t size = m->size;
        if (copy)
            memcpy(copy, m->data, m->size);
        store_unlock(st);
        if (copy == NULL) {
            reply_error(r, 503, "out of memory");
            return;
        }
        net_http_reply(r, 200, "message/rfc822", copy, size);
        emu_free(copy);
        return;
    }
    json_t *j = message_json(m, true, a->instance);
    store_unlock(st);
    reply_json(r, 200, j);
}

/* ------------------------------------------------------------------ */
/* Scenarios and listeners                                             */

static json_t *
info_json(const struct scenario_info *in)
{
    json_t *params = json_array();
    for (size_t k = 0; k < in->n_params; k++) {
        const struct scenario_param_info *p = &in->params[k];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "name", p->name, "type",
                              p->type, "default", p->def, "help", p->help);
        if (p->choices[0]) {
            json_t *ch = json_array();
            char tmp[sizeof(p->choices)];
            str_copy(tmp, sizeof(tmp), p->choices);
            for (char *tok = strtok(tmp, ", "); tok; tok = strtok(NULL, ", "))
                json_array_append_new(ch, json_string(tok));
            json_object_set_new(o, "choices", ch);
        }
        json_array_append_new(params, o);
    }
    return json_pack("{s:s,s:s,s:s,s:o}", "name", in->name, "description",
                     in->description, "replies", in->replies, "params", params);
}

static void
get_scenarios(struct api *a, struct net_http_req *r)
{
    struct scenario_info *infos;
    size_t n;
    if (scenario_list(a->e, &infos, &n) < 0) {
        reply_error(r, 503, "out of memory");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, info_json(&infos[i]));
    emu_free(infos);
    reply_json(r, 200, arr);
}

static json_t *
selection_json(struct api *a, size_t listener)
{
    struct scenario_load ld;
    bool is_default;
    if (scenario_get(a->e, listener, &ld, &is_default) < 0)
        return NULL;
    json_t *params = json_object();
    for (size_t i = 0; i < ld.n; i++)
        json_object_set_new(params, ld.keys[i], jstr(ld.vals[i]));
    json_t *o = json_pack("{s:o,s:o}", "name", jstr(ld.name), "params", params);
    if (listener != SIZE_MAX)
        json_object_set_new(o, "follows_default", json_boolean(is_default));
    scenario_load_free(&ld);
    return o;
}

/* {"name": "...", "params": {...}} -> selection. */
static void
put_selection(struct api *a, struct net_http_req *r, size_t listener)
{
    size_t len;
    const char *body = net_http_body(r, &len);
    char err[1024] = "";
    struct api_selection sel;
    if (api_parse_selection(body, len, listener != SIZE_MAX, &sel, err,
                            sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        return;
    }
    int rc =
        scenario_select(a->e, listener, sel.name, sel.keys,
                        (const char *const *)sel.vals, sel.n, err, sizeof(err));
    bool named = sel.name != NULL;
    api_selection_free(&sel);
    if (rc < 0) {
        reply_error(r, 400, "%s", err);
        return;
    }
    log_msg(a->e->log, LOG_LEVEL_INFO, "api", "scenario of %s set to %s",
            listener == SIZE_MAX ? "the default" : "a listener",
            named ? "a new selection" : "the default");
    json_t *o = selection_json(a, listener);
    reply_json(r, o ? 200 : 503, o);
}

static json_t *
listeners_json(struct api *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->e->n_listeners; i++) {
        const struct listener_spec *l = &a->e->listeners[i];
        json_t *o = json_pack("{s:s,s:s,s:b}", "address", l->name, "kind",
                              listener_kind_name(l->cfg->kind),
                              "proxy_protocol", l->cfg->proxy_protocol);
        json_t *sel = selection_json(a, i);
        json_object_set_new(o, "scenario", sel ? sel : json_null());
        json_array_append_new(arr, o);
    }
    return arr;
}

static size_t
listener_index(struct api *a, const char *addr)
{
    for (size_t i = 0; i < a->e->n_listeners; i++)
        if (strcmp(a->e->listeners[i].name, addr) == 0)
            return i;
    return SIZE_MAX;
}

/* ------------------------------------------------------------------ */
/* State, clock, health, metrics                                       */

struct state_api_call {
    struct api *a;
    struct net_http_req *r;
    json_t *arr;
};

static void
state_entry(const char *key, size_t klen, const struct kv_value *v, void *arg)
{
    struct state_api_call *c = arg;
    json_t *o = json_object();
    const char *slash = memchr(key, '/', klen);
    json_object_set_new(o, "scenario",
                        slash ? jdisplay(key, (size_t)(slash - key))
                              : json_null());
    json_object_set_new(
        o, "key",
        slash ? jdisplay(slash + 1, klen - (size_t)(slash + 1 - key))
              : jdisplay(key, klen));
    if (v->type == KV_NUMBER)
        json_object_set_new(o, "value", json_real(v->num));
    else
        json_object_set_new(o, "value", jdisplay(v->str, v->len));
    json_object_set_new(o, "expires", jtime(v->expires));
    if (v->expires > 0)
        json_object_set_new(o, "ttl",
                            json_real(v->expires - script_now(c->a->e)));
    json_array_append_new(c->arr, o);
}

static void
state_listed(const char *err, void *arg)
{
    struct state_api_call *c = arg;
    if (err) {
        json_decref(c->arr);
        reply_error(c->r, 503, "state store: %s", err);
    } else {
        reply_json(c->r, 200, c->arr);
    }
    emu_free(c);
}

static void
state_cleared(const char *err, void *arg)
{
    struct net_http_req *r = arg;
    if (err)
        reply_error(r, 503, "state store: %s", err);
    else
        net_http_reply(r, 204, "application/json", "", 0);
}

static json_t *
clock_json(struct api *a)
{
    double now = script_now(a->e);
    return json_pack("{s:f,s:o,s:f}", "now", now, "time", jtime(now), "offset",
                     atomic_load(&a->e->clock_offset));
}

static void
clock_set_done(const char *err, void *arg)
{
    struct state_api_call *c = arg;
    if (err)
        reply_error(c->r, 503, "state store: %s", err);
    else
        reply_json(c->r, 200, clock_json(c->a));
    emu_free(c);
}

static void
post_clock(struct api *a, struct net_http_req *r)
{
    size_t len;
    const char *body = net_http_body(r, &len);
    double v;
    bool relative;
    char err[256];
    if (api_parse_clock(body, len, &v, &relative, err, sizeof(err)) < 0) {
        reply_error(r, 400, "%s", err);
        return;
    }
    log_msg(a->e->log, LOG_LEVEL_INFO, "api", "clock %s %.3f s",
            relative ? "advanced by" : "offset set to", v);
    struct state_api_call *c = emu_calloc(1, sizeof(*c));
    if (c == NULL) {
        reply_error(r, 503, "out of memory");
        return;
    }
    c->a = a;
    c->r = r;
    state_clock_set(a->e->workers[0]->state, v, relative, clock_set_done, c);
}

static void
metric(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
get_metrics(struct api *a, struct net_http_req *r)
{
    struct metrics *m = &a->e->metrics;
    struct buf b = {0};
    metric(&b, "smtp_emulator_sessions_total", "counter",
           "SMTP sessions accepted.");
    buf_printf(&b, "smtp_emulator_sessions_total %lu\n",
               atomic_load(&m->sessions_total));
    metric(&b, "smtp_emulator_sessions_ended_total", "counter",
           "Ended SMTP sessions by outcome.");
    for (int o = OUTCOME_DELIVERED; o < OUTCOME_COUNT; o++)
        buf_printf(&b,
                   "smtp_emulator_sessions_ended_total{outcome=\"%s\"} %lu\n",
                   outcome_name((enum outcome)o),
                   atomic_load(&m->sessions_by_outcome[o]));
    metric(&b, "smtp_emulator_replies_total", "counter",
           "Replies sent, by stage and code.");
    for (int st = 0; st <= STAGE_COUNT; st++) {
        for (int c = 0; c < 400; c++) {
            unsigned long v = atomic_load(&m->replies[st][c]);
            if (v)
                buf_printf(&b,
                           "smtp_emulator_replies_total{stage=\"%s\",code="
                           "\"%d\"} %lu\n",
                           st == STAGE_COUNT ? "other"
                                             : stage_name((enum smtp_stage)st),
                           c + 200, v);
        }
    }
    metric(&b, "smtp_emulator_messages_accepted_total", "counter",
           "Messages accepted and captured.");
    buf_printf(&b, "smtp_emulator_messages_accepted_total %lu\n",
               atomic_load(&m->messages_accepted));
    metric(&b, "smtp_emulator_bytes_accepted_total", "counter",
           "Bytes of accepted messages.");
    buf_printf(&b, "smtp_emulator_bytes_accepted_total %lu\n",
               atomic_load(&m->bytes_accepted));
    metric(&b, "smtp_emulator_active_connections", "gauge",
           "SMTP connections open now.");
    buf_printf(&b, "smtp_emulator_active_connections %u\n",
               atomic_load(&a->e->active_sessions));
    metric(&b, "smtp_emulator_connections_refused_total", "counter",
           "Connections refused over --max-connections.");
    buf_printf(&b, "smtp_emulator_connections_refused_total %lu\n",
               atomic_load(&m->connections_refused));
    metric(&b, "smtp_emulator_tls_handshakes_total", "counter",
           "Completed TLS handshakes.");
    buf_printf(&b, "smtp_emulator_tls_handshakes_total %lu\n",
               atomic_load(&m->tls_handshakes));
    metric(&b, "smtp_emulator_tls_failures_total", "counter",
           "Failed TLS handshakes.");
    buf_printf(&b, "smtp_emulator_tls_failures_total %lu\n",
               atomic_load(&m->tls_failures));
    metric(&b, "smtp_emulator_scenario_errors_total", "counter",
           "Scenario runtime errors, budget and memory overruns.");
    buf_printf(&b, "smtp_emulator_scenario_errors_total %lu\n",
               atomic_load(&m->scenario_errors));
    metric(&b, "smtp_emulator_state_errors_total", "counter",
           "emu.state calls that failed (Redis unreachable, slow or "
           "failing).");
    buf_printf(&b, "smtp_emulator_state_errors_total %lu\n",
               atomic_load(&m->state_errors));
    metric(&b, "smtp_emulator_state_fallbacks_total", "counter",
           "emu.state calls answered from memory after a Redis failure.");
    buf_printf(&b, "smtp_emulator_state_fallbacks_total %lu\n",
               atomic_load(&m->state_fallbacks));
    metric(&b, "smtp_emulator_api_requests_total", "counter",
           "Control API requests.");
    buf_printf(&b, "smtp_emulator_api_requests_total %lu\n",
               atomic_load(&m->api_requests));
    net_http_reply(r, 200, "text/plain; version=0.0.4", b.data ? b.data : "",
                   b.len);
    buf_cleanup(&b);
}

/* ------------------------------------------------------------------ */
/* The web page (web/ next to scenarios/)                              */

static const char *
content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return NULL;
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i][0]) == 0)
            return types[i][1];
    return NULL;
}

/* Files are served only from web/ itself, by plain names: no slashes, no
 * dot-dot, a known extension, at most 1 MiB. */
static void
serve_static(struct api *a, struct net_http_req *r, const char *path)
{
    const char *name = strcmp(path, "/") == 0 ? "index.html" : path + 1;
    const char *ctype = content_type(name);
    bool ok = ctype != NULL && name[0] != '.' && strlen(name) < 64;
    for (const char *c = name; ok && *c; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
             (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_';
    if (!ok || strstr(name, "..")) {
        reply_error(r, 404, "no such endpoint: %s", path);
        return;
    }
    char file[4200];
    snprintf(file, sizeof(file), "%s/web/%s", a->e->base_dir, name);
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        reply_error(r, 404, "no such file: %s", name);
        return;
    }
    struct buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 &&
           b.len + n <= 1024 * 1024)
        buf_append(&b, chunk, n);
    fclose(f);
    net_http_reply(r, 200, ctype, b.data ? b.data : "", b.len);
    buf_cleanup(&b);
}

/* ------------------------------------------------------------------ */
/* Routing                                                             */

static bool
is(const char *method, const char *want)
{
    return strcmp(method, want) == 0;
}

/* path == prefix + one segment (+ optional suffix): returns the segment. */
static bool
segment(const char *path, const char *prefix, const char *suffix, char *out,
        size_t cap)
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0)
        return false;
    const char *seg = path + pl;
    const char *end = strchr(seg, '/');
    size_t sl = end ? (size_t)(end - seg) : strlen(seg);
    if (sl == 0 || sl >= cap)
        return false;
    const char *rest = seg + sl;
    if (suffix ? strcmp(rest, suffix) != 0 : *rest != '\0')
        return false;
    memcpy(out, seg, sl);
    out[sl] = '\0';
    return true;
}

static void
method_not_allowed(struct net_http_req *r)
{
    reply_error(r, 405, "method %s not allowed here", net_http_method(r));
}

static void
route(struct net_http_req *r, void *arg)
{
    struct api *a = arg;
    const char *m = net_http_method(r);
    const char *p = net_http_path(r);
    char seg[128];
    metrics_inc(&a->e->metrics.api_requests);
    if (strcmp(p, "/healthz") == 0) {
        bool stopping = atomic_load(&a->e->stopping);
        reply_json(r, stopping ? 503 : 200,
                   json_pack("{s:s,s:s}", "status",
                             stopping ? "stopping" : "ok", "instance",
                             a->instance));
        return;
    }
    /* The page's own files are public: a browser opening the URL cannot
     * send a Bearer header, and the page asks for the token itself. */
    if (is(m, "GET") && strncmp(p, "/api/", 5) != 0 &&
        strcmp(p, "/metrics") != 0) {
        serve_static(a, r, p);
        return;
    }
    const char *token = a->e->cfg->api_token;
    if (token) {
        const char *h = net_http_header(r, "Authorization");
        if (h == NULL || strncmp(h, "Bearer ", 7) != 0 ||
            !api_token_ok(h + 7, token)) {
            net_http_add_header(r, "WWW-Authenticate", "Bearer");
            reply_error(r, 401,
                        "a valid 'Authorization: Bearer TOKEN' is "
                        "required");
            return;
        }
    }
    if (strcmp(p, "/metrics") == 0) {
        is(m, "GET") ? get_metrics(a, r) : method_not_allowed(r);
    } else if (strcmp(p, "/api/v1/scenarios") == 0) {
        is(m, "GET") ? get_scenarios(a, r) : method_not_allowed(r);
    } else if (strcmp(p, "/api/v1/scenario") == 0) {
        if (is(m, "GET")) {
            json_t *o = selection_json(a, SIZE_MAX);
            reply_json(r, o ? 200 : 503, o);
        } else if (is(m, "PUT")) {
            put_selection(a, r, SIZE_MAX);
        } else {
            method_not_allowed(r);
        }
    } else if (strcmp(p, "/api/v1/listeners") == 0) {
        is(m, "GET") ? reply_json(r, 200, listeners_json(a))
                     : method_not_allowed(r);
    } else if (segment(p, "/api/v1/listeners/", "/scenario", seg,
                       sizeof(seg))) {
        size_t i = listener_index(a, seg);
        if (i == SIZE_MAX) {
            reply_error(r, 404, "no listener %s (see /api/v1/listeners)", seg);
        } else if (is(m, "GET")) {
            json_t *o = selection_json(a, i);
            reply_json(r, o ? 200 : 503, o);
        } else if (is(m, "PUT")) {
            put_selection(a, r, i);
        } else if (is(m, "DELETE")) {
            char err[64];
            scenario_select(a->e, i, NULL, NULL, NULL, 0, err, sizeof(err));
            json_t *o = selection_json(a, i);
            reply_json(r, o ? 200 : 503, o);
        } else {
            method_not_allowed(r);
        }
    } else if (strcmp(p, "/api/v1/sessions") == 0) {
        if (is(m, "GET")) {
            get_sessions(a, r);
        } else if (is(m, "DELETE")) {
            store_clear_sessions(&a->e->store);
            net_http_reply(r, 204, "application/json", "", 0);
        } else {
            method_not_allowed(r);
        }
    } else if (segment(p, "/api/v1/sessions/", NULL, seg, sizeof(seg)) ||
               segment(p, "/api/v1/sessions/", "/transcript", seg,
                       sizeof(seg))) {
        char *end;
        unsigned long long id = strtoull(seg, &end, 10);
        if (*end || !is(m, "GET")) {
            *end ? reply_error(r, 404, "no session %s", seg)
                 : method_not_allowed(r);
        } else {
            get_session(a, r, id, strstr(p, "/transcript") != NULL);
        }
    } else if (strcmp(p, "/api/v1/messages") == 0) {
        if (is(m, "GET")) {
            get_messages(a, r);
        } else if (is(m, "DELETE")) {
            store_clear_messages(&a->e->store);
            net_http_reply(r, 204, "application/json", "", 0);
        } else {
            method_not_allowed(r);
        }
    } else if (segment(p, "/api/v1/messages/", NULL, seg, sizeof(seg))) {
        if (is(m, "GET")) {
            get_message(a, r, seg, false);
        } else if (is(m, "DELETE")) {
            if (store_delete_message(&a->e->store, seg))
                net_http_reply(r, 204, "application/json", "", 0);
            else
                reply_error(r, 404, "no message %s", seg);
        } else {
            method_not_allowed(r);
        }
    } else if (segment(p, "/api/v1/messages/", "/raw", seg, sizeof(seg))) {
        is(m, "GET") ? get_message(a, r, seg, true) : method_not_allowed(r);
    } else if (strcmp(p, "/api/v1/state") == 0) {
        struct state *st = a->e->workers[0]->state;
        if (is(m, "GET")) {
            struct state_api_call *c = emu_calloc(1, sizeof(*c));
            if (c == NULL) {
                reply_error(r, 503, "out of memory");
                return;
            }
            c->a = a;
            c->r = r;
            c->arr = json_array();
            state_list(st, script_now(a->e), state_entry, state_listed, c);
        } else if (is(m, "DELETE")) {
            state_clear(st, state_cleared, r);
        } else {
            method_not_allowed(r);
        }
    } else if (strcmp(p, "/api/v1/clock") == 0) {
        if (is(m, "GET"))
            reply_json(r, 200, clock_json(a));
        else if (is(m, "POST"))
            post_clock(a, r);
        else
            method_not_allowed(r);
    } else {
        reply_error(r, 404, "no such endpoint: %s", p);
    }
}

int
api_start(struct emu *e, struct net *n, char *err, size_t errlen)
{
    struct api *a = emu_calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->e = e;
    a->net = n;
    /* Replicas tell their sessions apart by this; in a container the host
     * name is the container's, a fair default. */
    if (e->cfg->instance_id)
        snprintf(a->instance, sizeof(a->instance), "%s", e->cfg->instance_id);
    else if (gethostname(a->instance, sizeof(a->instance) - 1) != 0)
        snprintf(a->instance, sizeof(a->instance), "%s", e->hostname);
    a->timer = net_timer_new(n, on_wait_timer, a);
    a->http = net_http_new(n, e->cfg->api_host, e->cfg->api_port, API_MAX_BODY,
                           route, a, err, errlen);
    if (a->timer == NULL || a->http == NULL) {
        net_timer_free(a->timer);
        emu_free(a);
        if (err[0] == '\0')
            snprintf(err, errlen, "out of memory");
        return -1;
    }
    e->api = a;
    return 0;
}

uint16_t
api_port(const struct emu *e)
{
    return e->api ? net_http_port(e->api->http) : 0;
}

void
api_stop(struct emu *e)
{
    struct api *a = e->api;
    if (a == NULL)
        return;
    while (a->waiters) {
        struct waiter *w = a->waiters;
        a->waiters = w->next;
        answer_waiter(a, w, true);
        emu_free(w);
    }
    net_http_free(a->http);
    net_timer_free(a->timer);
    emu_free(a);
    e->api = NULL;
}
