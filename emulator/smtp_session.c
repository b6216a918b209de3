/*
 * smtp_session: the SMTP state machine (RFC 5321 with PIPELINING, SIZE,
 * STARTTLS, AUTH, 8BITMIME, SMTPUTF8, DSN, CHUNKING), Postfix's wording for
 * every generic reply, and the points where a scenario decides. Dispatch is
 * parse -> look up -> check (syntax, state) -> decision -> proceed; a
 * decision may come back with a delay, in which case input is paused and a
 * timer resumes the same continuation. Owns its connection, timers,
 * transaction and store record; smtp_session_free() is the one way out.
 * It never includes a libevent header: net.h is its view of the world.
 */
#include "smtp_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base64.h"
#include "data_reader.h"
#include "decision.h"
#include "proxy.h"
#include "reply.h"
#include "sasl.h"
#include "script.h"
#include "smtp_parse.h"
#include "spool.h"
#include "stage.h"

/* Session flags. */
#define SF_CLOSE_AFTER_REPLY 0x0001 /* free once the output drains */
#define SF_PEER_EOF 0x0002          /* the client closed its side */
#define SF_ESMTP 0x0004             /* EHLO, not HELO */
#define SF_SKIP_LINE 0x0008         /* discarding an over-long line */
#define SF_DEAD 0x0010              /* free when the call stack unwinds */
#define SF_BDAT_DISCARD 0x0020      /* reading a refused chunk */
#define SF_BDAT_LAST 0x0040         /* the chunk being read is LAST */
#define SF_SHUTDOWN 0x0080          /* server stopping: close when idle */
#define SF_BDAT 0x0100              /* this transaction uses BDAT */
#define SF_SMTPUTF8 0x0200          /* MAIL FROM had SMTPUTF8 */
#define SF_REJECT_ALL 0x0400        /* greeting was a 5xx: refuse all */
#define SF_AUTHED 0x0800
/* A chunk was refused: discard the rest until BDAT LAST or RSET. */
#define SF_BDAT_ERROR 0x1000
#define SF_ERR_DELAYED 0x2000       /* this command already waited */
#define SF_RESET_AFTER_REPLY 0x4000 /* RST once the output drains */
#define SF_ABORT_ON_INPUT 0x8000    /* hung: close when the client speaks */
#define SF_ABORT_RST 0x10000        /* ... with RST instead of FIN */
#define SF_SCRIPT_WAIT 0x20000      /* a hook waits for emu.state */
#define SF_OUT_FULL 0x40000         /* input paused: replies not read */

/* Replies a client has not read, beyond which its input waits: a client
 * that pipelines without reading must not grow our memory (Postfix,
 * writing synchronously, simply stops reading). */
#define OUT_HIGH (256 * 1024)

/* Line buffers above this size are released after use, so an idle session
 * costs a few hundred bytes whatever its history. */
#define LINE_KEEP 512
/* The longest AUTH continuation line (RFC 4954 4: at least 12288). */
#define AUTH_LINE_MAX 12288
/* Transcript bytes recorded per message body. */
#define TRANSCRIPT_BODY_MAX 65536

struct smtp_session;
typedef void decided_fn(struct smtp_session *s, struct decision *d);

struct smtp_session {
    struct worker *w;
    struct emu *emu;
    const struct listener_spec *listener;
    struct net_conn *conn;
    struct smtp_session *next, *prev; /* worker's live list */
    uint64_t id;
    char idstr[24];
    enum smtp_state state;
    unsigned flags;
    unsigned busy; /* nesting depth of entry points on the stack */
    double start;

    /* The client as the session sees it (after XCLIENT or PROXY), and the
     * real TCP peer. */
    struct ip_addr client_addr;
    char client_ip[IP_STR_MAX];
    uint16_t client_port;
    char client_name[256]; /* XCLIENT NAME, else "unknown" */
    char peer_ip[IP_STR_MAX];
    uint16_t peer_port;
    char *helo;

    /* Current transaction. */
    char *mail_from;
    struct buf mail_params;
    char **rcpts;
    size_t n_rcpts, rcpt_cap;
    unsigned n_rcpt_refused;
    struct buf msg;
    struct data_reader dr;
    uint64_t bdat_remaining;
    uint64_t bdat_chunk; /* size of the chunk being read */
    uint64_t body_logged;
    uint64_t declared_size; /* MAIL FROM SIZE=, 0 when not given */
    uint64_t body_raw;      /* body bytes read for this message */
    uint64_t cut_bytes;     /* the scenario's cut point, 0: none */
    enum decide_then cut_then;
    uint32_t cut_hang_ms;

    /* The command being handled. */
    struct buf line;
    const char *line_eol; /* "\r\n", "\n" or "" as the client sent it */
    struct smtp_command cmd;
    struct smtp_envelope_args env;

    /* AUTH exchange. */
    enum sasl_mech auth_mech;
    int auth_step;
    struct buf auth_user;   /* decoded user (LOGIN step 1) */
    struct buf auth_secret; /* decoded password or token */
    char *auth_user_final;

    struct net_tls_info *tls; /* set once TLS is up */

    unsigned errors;

    /* A decision waiting for its delay. */
    struct decision pending;
    decided_fn *pending_fn;
    enum smtp_state resume_state;
    struct net_timer *timer;

    /* Outcome bookkeeping. */
    enum outcome outcome; /* set when the scenario or a timeout ends it */
    enum smtp_stage outcome_stage;
    int last_reject_code;
    int last_code; /* of the last reply sent */
    enum smtp_stage last_reject_stage;
    enum smtp_stage cur_stage;
    unsigned messages;
    struct store_session *rec;

    struct script_session *script; /* the scenario's per-session state */
    const char *end_reason;        /* static text: why the session ended */

    /* A tarpit reply: lines still to send, one per tick. */
    struct buf slow;
    size_t slow_off;
    bool slow_active;
    uint32_t line_delay_ms; /* for replies sent by the current decision */
    struct net_timer *slow_timer;

    /* "session=ID client=IP" as every log line of the session starts,
     * formatted once (again when the client address changes). */
    struct buf log_pre;
    char log_pre_ip[IP_STR_MAX];
};

static void session_process(struct smtp_session *s);
static void session_end(struct smtp_session *s, enum outcome o,
                        const char *reason);
static void session_greet(struct smtp_session *s);
static void tx_reset(struct smtp_session *s);

const char *
smtp_state_name(enum smtp_state st)
{
    switch (st) {
    case SMTP_STATE_NEW:
        return "NEW";
    case SMTP_STATE_PROXY:
        return "PROXY";
    case SMTP_STATE_TLS_ACCEPT:
        return "TLS_ACCEPT";
    case SMTP_STATE_CMD:
        return "CMD";
    case SMTP_STATE_AUTH:
        return "AUTH";
    case SMTP_STATE_DATA:
        return "DATA";
    case SMTP_STATE_BDAT:
        return "BDAT";
    case SMTP_STATE_TLS_PENDING:
        return "TLS_PENDING";
    case SMTP_STATE_TLS_HANDSHAKE:
        return "TLS_HANDSHAKE";
    case SMTP_STATE_WAIT:
        return "WAIT";
    case SMTP_STATE_HANG:
        return "HANG";
    case SMTP_STATE_QUIT:
        return "QUIT";
    }
    return "?";
}

/* ------------------------------------------------------------------ */
/* Logging and transcript                                              */

static bool
log_on(struct smtp_session *s, enum log_level l)
{
    return log_enabled(s->emu->log, l);
}

static void
slog(struct smtp_session *s, enum log_level lvl, const char *event,
     const struct log_kv *extra, size_t n)
{
    if (!log_on(s, lvl))
        return;
    if (s->log_pre.len == 0 || strcmp(s->log_pre_ip, s->client_ip) != 0) {
        struct log_kv pre[] = {LOG_KV("session", s->idstr),
                               LOG_KV("client", s->client_ip)};
        s->log_pre.len = 0;
        if (log_format_pairs(s->emu->log, &s->log_pre, pre, 2) == 0)
            str_copy(s->log_pre_ip, sizeof(s->log_pre_ip), s->client_ip);
        else
            s->log_pre.len = 0;
    }
    if (s->log_pre.len == 0) { /* out of memory: pairs the long way */
        struct log_kv kv[12];
        size_t k = 0;
        kv[k++] = LOG_KV("session", s->idstr);
        kv[k++] = LOG_KV("client", s->client_ip);
        for (size_t i = 0; i < n && k < EMU_ARRAY_LEN(kv); i++)
            kv[k++] = extra[i];
        log_emit(s->emu->log, lvl, event, kv, k);
        return;
    }
    log_emit_pre(s->emu->log, lvl, event, s->log_pre.data, s->log_pre.len,
                 extra, n < 10 ? n : 10);
}

static double
now(struct smtp_session *s)
{
    return net_now(s->w->net);
}

static void
transcript(struct smtp_session *s, enum transcript_dir dir, const char *p,
           size_t len)
{
    if (s->rec)
        store_transcript_add(&s->emu->store, s->rec, now(s), dir, p, len);
}

/* Log and record a client line; AUTH secrets are masked by the caller. */
static void
note_client_line(struct smtp_session *s, const char *p, size_t len)
{
    /* The transcript keeps the line ending the client really sent, so a
     * bare LF shows; the log shows the line alone. */
    if (s->rec) {
        char tmp[512];
        size_t el = strlen(s->line_eol);
        if (len + el <= sizeof(tmp)) {
            memcpy(tmp, p, len);
            memcpy(tmp + len, s->line_eol, el);
            transcript(s, TR_CLIENT, tmp, len + el);
        } else {
            struct buf b = {0};
            if (buf_append(&b, p, len) == 0 &&
                buf_append(&b, s->line_eol, el) == 0)
                transcript(s, TR_CLIENT, b.data, b.len);
            buf_cleanup(&b);
        }
    }
    struct log_kv kv[] = {LOG_KVN("line", p, len)};
    slog(s, LOG_LEVEL_INFO, "cmd", kv, 1);
}

static void
set_state(struct smtp_session *s, enum smtp_state st)
{
    if (s->state == st)
        return;
    if (log_on(s, LOG_LEVEL_TRACE)) {
        struct log_kv kv[] = {LOG_KV("from", smtp_state_name(s->state)),
                              LOG_KV("to", smtp_state_name(st))};
        slog(s, LOG_LEVEL_TRACE, "state", kv, 2);
    }
    s->state = st;
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */

static void
write_out(struct smtp_session *s, const char *p, size_t len)
{
    if (s->conn == NULL || (s->flags & SF_DEAD))
        return;
    if (net_conn_write(s->conn, p, len) < 0) {
        s->flags |= SF_CLOSE_AFTER_REPLY;
        session_end(s, OUTCOME_ERROR, "write failed");
    }
}

static void session_process(struct smtp_session *s);
static void session_leave(struct smtp_session *s);

/* One more line of a tarpit reply; the next one after the delay. When
 * the last has gone, input is read again. */
static void
on_slow_timer(void *arg)
{
    struct smtp_session *s = arg;
    s->busy++;
    const char *p = s->slow.data + s->slow_off;
    size_t left = s->slow.len - s->slow_off;
    const char *nl = memchr(p, '\n', left);
    size_t n = nl ? (size_t)(nl - p) + 1 : left;
    write_out(s, p, n);
    s->slow_off += n;
    if (s->slow_off < s->slow.len && !(s->flags & SF_DEAD)) {
        net_timer_start(s->slow_timer, s->line_delay_ms / 1000.0);
    } else {
        s->slow_active = false;
        s->line_delay_ms = 0;
        buf_reset(&s->slow, LINE_KEEP);
        s->slow_off = 0;
        if (s->conn && !(s->flags & (SF_DEAD | SF_CLOSE_AFTER_REPLY)) &&
            s->state != SMTP_STATE_HANG && s->state != SMTP_STATE_WAIT) {
            net_conn_read_enable(s->conn, true);
            session_process(s);
        }
    }
    session_leave(s);
}

/* Queue reply bytes for the tarpit instead of writing them at once. */
static void
slow_write(struct smtp_session *s, const char *p, size_t len)
{
    if (buf_append(&s->slow, p, len) < 0) {
        write_out(s, p, len); /* no memory for the queue: send at once */
        return;
    }
    if (s->slow_active)
        return;
    if (s->slow_timer == NULL &&
        (s->slow_timer = net_timer_new(s->w->net, on_slow_timer, s)) == NULL) {
        write_out(s, s->slow.data, s->slow.len);
        buf_reset(&s->slow, LINE_KEEP);
        return;
    }
    s->slow_active = true;
    if (s->conn)
        net_conn_read_enable(s->conn, false);
    net_timer_start(s->slow_timer, s->line_delay_ms / 1000.0);
}

/* Send a finished reply (CRLF-terminated lines in `b`), log it line by
 * line, count it, and apply Postfix's rules: every 421/521 reply is
 * followed by a disconnect, and a 4xx/5xx counts toward the error limit. */
static void
send_reply_buf(struct smtp_session *s, const struct buf *b, int code,
               enum transcript_dir dir)
{
    s->last_code = code;
    if (s->line_delay_ms > 0 || s->slow_active)
        slow_write(s, b->data, b->len);
    else
        write_out(s, b->data, b->len);
    size_t i = 0;
    while (i < b->len) {
        const char *nl = memchr(b->data + i, '\n', b->len - i);
        size_t end = nl ? (size_t)(nl - b->data) + 1 : b->len;
        size_t n = end - i;
        size_t body = n >= 2 ? n - 2 : n; /* without CRLF */
        transcript(s, dir, b->data + i, n);
        if (log_on(s, LOG_LEVEL_INFO)) {
            struct log_kv kv[] = {LOG_KVN("line", b->data + i, body)};
            slog(s, LOG_LEVEL_INFO, "reply", kv, 1);
        }
        i = end;
    }
    int stage = s->cur_stage;
    if (code >= 200 && code <= 599)
        metrics_inc(&s->emu->metrics.replies[stage][code - 200]);
    if (code == 421 || code == 521)
        s->flags |= SF_CLOSE_AFTER_REPLY;
}

static void reply_error_limit(struct smtp_session *s);

/* Count a client-caused error reply and enforce the hard limit at once
 * (Postfix checks smtpd_hard_error_limit before reading the next command,
 * so the 421 follows the 20th error reply without waiting). */
static void
count_error(struct smtp_session *s, int code)
{
    if (code < 400 || code == 421 || (s->flags & SF_CLOSE_AFTER_REPLY))
        return;
    s->errors++;
    if (s->errors >= s->emu->cfg->hard_error_limit)
        reply_error_limit(s);
}

static int smtp_replyv(struct smtp_session *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static int
smtp_replyv(struct smtp_session *s, const char *fmt, va_list ap)
{
    char text[REPLY_LINE_MAX];
    struct buf b = {0};
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        /* A reply we cannot format is our bug; say so, keep serving. */
        n = snprintf(text, sizeof(text), "451 4.3.0 Error: internal error");
    }
    int code = reply_finish(&b, text, (size_t)n);
    if (code < 0) {
        buf_cleanup(&b);
        code = reply_finish(&b, "451 4.3.0 Error: internal error", 31);
        if (code < 0) {
            session_end(s, OUTCOME_ERROR, "out of memory");
            return -1;
        }
    }
    send_reply_buf(s, &b, code, TR_SERVER);
    buf_cleanup(&b);
    return code;
}

/* printf-style reply: "250 2.1.0 Ok", lines separated by '\n'. */
static int smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = smtp_replyv(s, fmt, ap);
    va_end(ap);
    return code;
}

/* A constant one-line reply, CRLF included: the common replies skip the
 * printf and the parsing. */
static void
smtp_reply_fixed(struct smtp_session *s, const char *line)
{
    struct buf b = {(char *)line, strlen(line), 0};
    send_reply_buf(
        s, &b, (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'),
        TR_SERVER);
}

/* A reply to a command: also feeds the error counter. */
static int smtp_reply_cmd(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
smtp_reply_cmd(struct smtp_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = smtp_replyv(s, fmt, ap);
    va_end(ap);
    if (code >= 400) {
        s->last_reject_code = code;
        s->last_reject_stage = s->cur_stage;
    }
    count_error(s, code);
    return code;
}

static void
reply_error_limit(struct smtp_session *s)
{
    smtp_reply(s, "421 4.7.0 %s Error: too many errors", s->emu->hostname);
    s->flags |= SF_CLOSE_AFTER_REPLY;
}

static void apply_then(struct smtp_session *s, enum decide_then t,
                       uint32_t hang_ms);

/* Send the reply carried by a decision (REPLY, REPLY_CLOSE), then do what
 * it says should follow (close, reset, hang). */
static int
reply_decision(struct smtp_session *s, const struct decision *d)
{
    struct buf b = {0};
    int code =
        reply_finish(&b, d->reply.data ? d->reply.data : "", d->reply.len);
    if (code < 0) {
        buf_cleanup(&b);
        metrics_inc(&s->emu->metrics.scenario_errors);
        return smtp_reply(s, "451 4.3.0 Error: internal scenario error");
    }
    send_reply_buf(s, &b, code, TR_SCENARIO);
    buf_cleanup(&b);
    if (code >= 400) {
        s->last_reject_code = code;
        s->last_reject_stage = s->cur_stage;
    }
    enum decide_then then = d->then;
    if (d->kind == DECIDE_REPLY_CLOSE)
        then = THEN_CLOSE;
    if (then == THEN_NONE)
        count_error(s, code);
    else {
        if (code >= 400 && s->outcome == OUTCOME_ACTIVE) {
            /* A refusal that ends the session counts as a rejection. */
            s->outcome = OUTCOME_REJECTED;
            s->outcome_stage = s->cur_stage;
        }
        apply_then(s, then, d->hang_ms);
    }
    return code;
}

/* The code a REPLY decision would send, or 0. */
static int
decision_code(const struct decision *d)
{
    if ((d->kind != DECIDE_REPLY && d->kind != DECIDE_REPLY_CLOSE) ||
        d->reply.len < 3)
        return 0;
    const char *p = d->reply.data;
    if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' ||
        p[2] > '9')
        return 0;
    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* ------------------------------------------------------------------ */
/* Ending a session                                                    */

static void
session_unlink(struct smtp_session *s)
{
    struct worker *w = s->w;
    if (s->prev)
        s->prev->next = s->next;
    else if (w->sessions == s)
        w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    w->n_sessions--;
}

/* The final outcome: what the scenario or a timeout decided, else
 * delivered / rejected (with the last refusal) / disconnected. */
static enum outcome
final_outcome(const struct smtp_session *s, int *code, enum smtp_stage *st)
{
    enum outcome o = s->outcome;
    *st = s->outcome_stage;
    *code = 0;
    if (o == OUTCOME_ACTIVE || o == OUTCOME_DISCONNECTED) {
        if (s->messages > 0) {
            o = OUTCOME_DELIVERED;
        } else if (s->last_reject_code >= 400) {
            o = OUTCOME_REJECTED;
            *st = s->last_reject_stage;
        } else {
            o = OUTCOME_DISCONNECTED;
        }
    }
    if (o == OUTCOME_REJECTED)
        *code = s->last_reject_code;
    return o;
}

static bool
outcome_has_stage(enum outcome o)
{
    return o == OUTCOME_REJECTED || o == OUTCOME_CLOSED || o == OUTCOME_RESET ||
           o == OUTCOME_HUNG;
}

static void
record_outcome(struct smtp_session *s, enum outcome o, int code,
               enum smtp_stage st)
{
    metrics_inc(&s->emu->metrics.sessions_by_outcome[o]);
    if (s->rec == NULL)
        return;
    store_lock(&s->emu->store);
    str_copy(s->rec->outcome, sizeof(s->rec->outcome), outcome_name(o));
    s->rec->outcome_code = code;
    s->rec->last_code = s->last_code;
    if (outcome_has_stage(o))
        str_copy(s->rec->outcome_stage, sizeof(s->rec->outcome_stage),
                 stage_name(st));
    s->rec->messages = s->messages;
    store_unlock(&s->emu->store);
}

static void
smtp_session_free(struct smtp_session *s, const char *reason)
{
    if (s->end_reason == NULL)
        s->end_reason = reason;
    if (s->busy > 0) {
        s->flags |= SF_DEAD;
        return;
    }
    reason = s->end_reason;
    int code;
    enum smtp_stage st;
    enum outcome o = final_outcome(s, &code, &st);
    if (s->script) {
        s->busy++; /* the disconnect hook must not free us again */
        s->cur_stage = STAGE_DISCONNECT;
        script_session_end(s->script, outcome_name(o), code,
                           outcome_has_stage(o) ? stage_name(st) : NULL);
        s->script = NULL;
        s->busy--;
    }
    record_outcome(s, o, code, st);
    if (log_on(s, LOG_LEVEL_INFO)) {
        char msgs[24];
        snprintf(msgs, sizeof(msgs), "%u", s->messages);
        struct log_kv kv[] = {LOG_KV("reason", reason),
                              LOG_KV("messages", msgs)};
        slog(s, LOG_LEVEL_INFO, "disconnect", kv, 2);
    }
    if (s->rec)
        store_session_end(&s->emu->store, s->rec, now(s));
    s->rec = NULL;
    if (s->conn)
        net_conn_free(s->conn);
    net_timer_free(s->timer);
    net_timer_free(s->slow_timer);
    buf_cleanup(&s->slow);
    buf_cleanup(&s->log_pre);
    session_unlink(s);
    atomic_fetch_sub(&s->emu->active_sessions, 1);
    tx_reset(s);
    buf_cleanup(&s->line);
    buf_cleanup(&s->mail_params);
    buf_cleanup(&s->auth_user);
    buf_cleanup(&s->auth_secret);
    emu_free(s->auth_user_final);
    emu_free(s->helo);
    emu_free(s->rcpts);
    emu_free(s->tls);
    decision_cleanup(&s->pending);
    emu_free(s);
}

/* Record why the session is ending and close it when the stack unwinds:
 * at once when nothing is waiting to be written, else after the drain. */
static void
session_end(struct smtp_session *s, enum outcome o, const char *reason)
{
    if (s->outcome == OUTCOME_ACTIVE && o != OUTCOME_ACTIVE) {
        s->outcome = o;
        s->outcome_stage = s->cur_stage;
    }
    if (s->end_reason == NULL)
        s->end_reason = reason;
    s->flags |= SF_CLOSE_AFTER_REPLY;
    if (s->conn == NULL || net_conn_out_len(s->conn) == 0 ||
        o == OUTCOME_ERROR) {
        smtp_session_free(s, reason);
    }
}

/* Called when an entry point unwinds: apply deferred frees and the
 * close-after-reply rule. */
static void
session_leave(struct smtp_session *s)
{
    if (--s->busy > 0)
        return;
    if (s->flags & SF_DEAD) {
        smtp_session_free(s, "closed");
        return;
    }
    if ((s->flags & SF_CLOSE_AFTER_REPLY) && s->state != SMTP_STATE_HANG &&
        !s->slow_active && (s->conn == NULL || net_conn_out_len(s->conn) == 0))
        smtp_session_free(s, "closed");
}

/* ------------------------------------------------------------------ */
/* Scenario decisions                                                  */

static void
on_timer(void *arg)
{
    struct smtp_session *s = arg;
    s->busy++;
    if (s->flags & SF_OUT_FULL) {
        slog(s, LOG_LEVEL_INFO, "write-timeout", NULL, 0);
        s->outcome = OUTCOME_TIMED_OUT;
        smtp_session_free(s, "write timeout");
        session_leave(s);
        return;
    }
    if (s->state == SMTP_STATE_HANG) {
        s->outcome = OUTCOME_HUNG;
        slog(s, LOG_LEVEL_INFO, "hang-timeout", NULL, 0);
        smtp_session_free(s, "hang timeout");
        session_leave(s);
        return;
    }
    if (s->state == SMTP_STATE_WAIT && s->pending_fn) {
        decided_fn *fn = s->pending_fn;
        struct decision d = s->pending;
        decision_init(&s->pending);
        s->pending_fn = NULL;
        set_state(s, s->resume_state);
        if (s->conn)
            net_conn_read_enable(s->conn, true);
        uint32_t outer = s->line_delay_ms;
        if (d.line_delay_ms > 0)
            s->line_delay_ms = d.line_delay_ms;
        fn(s, &d);
        if (!s->slow_active)
            s->line_delay_ms = outer;
        decision_cleanup(&d);
        if (!(s->flags & (SF_DEAD | SF_CLOSE_AFTER_REPLY)))
            session_process(s);
    } else if (s->state == SMTP_STATE_WAIT) {
        /* An error-delay pause ends. */
        set_state(s, s->resume_state);
        if (s->conn)
            net_conn_read_enable(s->conn, true);
        session_process(s);
    }
    session_leave(s);
}

static int
ensure_timer(struct smtp_session *s)
{
    if (s->timer == NULL)
        s->timer = net_timer_new(s->w->net, on_timer, s);
    return s->timer ? 0 : -1;
}

/* Stop answering: the socket stays open, input is read and thrown away
 * (so a client that leaves is noticed) until the timer ends it. With
 * `abort` the first input byte ends it instead (close, or RST). */
static void
enter_hang(struct smtp_session *s, uint32_t hang_ms, unsigned abort)
{
    s->outcome = OUTCOME_HUNG;
    s->outcome_stage = s->cur_stage;
    s->flags &= ~(SF_ABORT_ON_INPUT | SF_ABORT_RST);
    s->flags |= abort;
    if (abort) {
        s->outcome = abort & SF_ABORT_RST ? OUTCOME_RESET : OUTCOME_CLOSED;
        transcript(s, TR_NOTE, "scenario waits for input, then closes", 38);
    } else {
        transcript(s, TR_NOTE, "scenario stopped answering", 26);
    }
    set_state(s, SMTP_STATE_HANG);
    if (s->conn) {
        net_conn_set_timeout(s->conn, 0);
        net_conn_read_enable(s->conn, true);
    }
    double secs = hang_ms ? hang_ms / 1000.0 : 600.0;
    if (ensure_timer(s) == 0)
        net_timer_start(s->timer, secs);
}

static void
reset_now(struct smtp_session *s, const char *reason)
{
    s->outcome = OUTCOME_RESET;
    s->outcome_stage = s->cur_stage;
    if (s->conn) {
        net_conn_reset(s->conn);
        s->conn = NULL;
    }
    smtp_session_free(s, reason);
}

/* What happens once a scenario's reply (or partial reply) is written. */
static void
apply_then(struct smtp_session *s, enum decide_then t, uint32_t hang_ms)
{
    struct log_kv kv[] = {LOG_KV("stage", stage_name(s->cur_stage)),
                          LOG_KV("then", decide_then_name(t))};
    switch (t) {
    case THEN_NONE:
        return;
    case THEN_CLOSE:
        slog(s, LOG_LEVEL_INFO, "scenario-close", kv, 1);
        transcript(s, TR_NOTE, "connection closed by scenario", 29);
        if (s->outcome == OUTCOME_ACTIVE) {
            s->outcome = OUTCOME_CLOSED;
            s->outcome_stage = s->cur_stage;
        }
        if (s->conn)
            net_conn_read_enable(s->conn, false);
        session_end(s, OUTCOME_CLOSED, "closed by scenario");
        return;
    case THEN_RESET:
        slog(s, LOG_LEVEL_INFO, "scenario-reset", kv, 1);
        transcript(s, TR_NOTE, "connection reset by scenario", 28);
        if (s->conn && net_conn_out_len(s->conn) > 0) {
            /* Let the reply leave first; then abort (on_net DRAINED). */
            s->outcome = OUTCOME_RESET;
            s->outcome_stage = s->cur_stage;
            s->flags |= SF_RESET_AFTER_REPLY;
            net_conn_read_enable(s->conn, false);
            return;
        }
        reset_now(s, "reset by scenario");
        return;
    case THEN_HANG:
        slog(s, LOG_LEVEL_INFO, "scenario-hang", kv, 1);
        enter_hang(s, hang_ms, 0);
        return;
    case THEN_CLOSE_ON_INPUT:
    case THEN_RESET_ON_INPUT:
        slog(s, LOG_LEVEL_INFO, "scenario-abort-on-input", kv, 2);
        enter_hang(s, hang_ms,
                   SF_ABORT_ON_INPUT |
                       (t == THEN_RESET_ON_INPUT ? SF_ABORT_RST : 0));
        return;
    }
}

/* Carry out the kinds that end or freeze the conversation. Returns true
 * when the decision was one of them. */
static bool
apply_terminal(struct smtp_session *s, struct decision *d)
{
    switch (d->kind) {
    case DECIDE_DEFAULT:
    case DECIDE_REPLY:
    case DECIDE_REPLY_CLOSE:
        return false;
    case DECIDE_DROP:
        apply_then(s, THEN_CLOSE, 0);
        return true;
    case DECIDE_RESET:
        s->cur_stage = s->cur_stage;
        slog(s, LOG_LEVEL_INFO, "scenario-reset", NULL, 0);
        transcript(s, TR_NOTE, "connection reset by scenario", 28);
        reset_now(s, "reset by scenario");
        return true;
    case DECIDE_HANG:
        slog(s, LOG_LEVEL_INFO, "scenario-hang", NULL, 0);
        enter_hang(s, d->hang_ms, 0);
        return true;
    case DECIDE_PARTIAL:
        slog(s, LOG_LEVEL_INFO, "scenario-partial", NULL, 0);
        if (d->reply.len) {
            write_out(s, d->reply.data, d->reply.len);
            transcript(s, TR_SCENARIO, d->reply.data, d->reply.len);
        }
        apply_then(s, d->then == THEN_NONE ? THEN_CLOSE : d->then, d->hang_ms);
        return true;
    }
    return false;
}

/* Continue with `fn` now, or after the decision's delay (a timer; input
 * is paused meanwhile, other sessions go on). Takes over `d`. */
static void
decide_apply(struct smtp_session *s, struct decision *d, decided_fn *fn)
{
    if (d->delay_ms > 0 && ensure_timer(s) == 0) {
        decision_cleanup(&s->pending);
        s->pending = *d;
        decision_init(d);
        s->pending_fn = fn;
        s->resume_state = s->state;
        set_state(s, SMTP_STATE_WAIT);
        if (s->conn)
            net_conn_read_enable(s->conn, false);
        net_timer_start(s->timer, s->pending.delay_ms / 1000.0);
        return;
    }
    /* A line delay from on_command carries over to the stage decision
     * the command then leads to, unless that one has its own. */
    uint32_t outer = s->line_delay_ms;
    if (d->line_delay_ms > 0)
        s->line_delay_ms = d->line_delay_ms;
    fn(s, d);
    if (!s->slow_active)
        s->line_delay_ms = outer;
    decision_cleanup(d);
}

/* The hook waits for Redis: pause input until smtp_session_hook_done. */
static void
wait_for_script(struct smtp_session *s, decided_fn *fn)
{
    s->pending_fn = fn;
    s->resume_state = s->state;
    s->flags |= SF_SCRIPT_WAIT;
    set_state(s, SMTP_STATE_WAIT);
    if (s->conn)
        net_conn_read_enable(s->conn, false);
}

void
smtp_session_hook_done(struct smtp_session *s, struct decision *d)
{
    if (!(s->flags & SF_SCRIPT_WAIT))
        return;
    s->busy++;
    s->flags &= ~SF_SCRIPT_WAIT;
    decided_fn *fn = s->pending_fn;
    s->pending_fn = NULL;
    set_state(s, s->resume_state);
    if (s->conn)
        net_conn_read_enable(s->conn, true);
    struct decision dd = *d;
    decision_init(d);
    decide_apply(s, &dd, fn);
    if (!(s->flags & (SF_DEAD | SF_CLOSE_AFTER_REPLY)) &&
        s->state != SMTP_STATE_WAIT)
        session_process(s);
    session_leave(s);
}

/* Ask the scenario, then continue with `fn`. */
static void
decide(struct smtp_session *s, enum smtp_stage stage, decided_fn *fn)
{
    struct decision d;
    decision_init(&d);
    s->cur_stage = stage;
    if (s->script && script_decide(s->script, stage, &d) == SCRIPT_PENDING) {
        wait_for_script(s, fn);
        return;
    }
    decide_apply(s, &d, fn);
}

/* ------------------------------------------------------------------ */
/* Transaction                                                         */

static void
tx_reset(struct smtp_session *s)
{
    emu_free(s->mail_from);
    s->mail_from = NULL;
    buf_reset(&s->mail_params, 256);
    for (size_t i = 0; i < s->n_rcpts; i++)
        emu_free(s->rcpts[i]);
    s->n_rcpts = 0;
    if (s->rcpt_cap > 16) {
        emu_free(s->rcpts);
        s->rcpts = NULL;
        s->rcpt_cap = 0;
    }
    s->n_rcpt_refused = 0;
    buf_cleanup(&s->msg);
    s->flags &= ~(SF_BDAT | SF_SMTPUTF8 | SF_BDAT_DISCARD | SF_BDAT_LAST |
                  SF_BDAT_ERROR);
    s->bdat_remaining = 0;
    s->bdat_chunk = 0;
    s->declared_size = 0;
    s->body_logged = 0;
    if (s->script)
        script_tx_reset(s->script);
}

static bool
in_tx(const struct smtp_session *s)
{
    return s->mail_from != NULL;
}

static bool
bdat_active(const struct smtp_session *s)
{
    return (s->flags & (SF_BDAT | SF_BDAT_ERROR)) != 0;
}

static int
add_rcpt(struct smtp_session *s, const char *addr, size_t len)
{
    if (s->n_rcpts == s->rcpt_cap) {
        size_t cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
        char **nr = emu_realloc(s->rcpts, cap * sizeof(*nr));
        if (nr == NULL)
            return -1;
        s->rcpts = nr;
        s->rcpt_cap = cap;
    }
    char *a = emu_strndup(addr, len);
    if (a == NULL)
        return -1;
    s->rcpts[s->n_rcpts++] = a;
    return 0;
}

/* A Postfix long queue ID: letters and digits without vowels. */
static void
make_queue_id(struct smtp_session *s, char *out, size_t cap)
{
    static const char alphabet[] =
        "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";
    size_t n = 12 < cap - 1 ? 12 : cap - 1;
    uint64_t r = rng_next(&s->w->rng);
    uint64_t r2 = rng_next(&s->w->rng);
    for (size_t i = 0; i < n; i++) {
        uint64_t *src = i < 8 ? &r : &r2;
        out[i] = alphabet[*src % (sizeof(alphabet) - 1)];
        *src /= (sizeof(alphabet) - 1);
    }
    out[n] = '\0';
}

static void
resource_shortage(struct smtp_session *s)
{
    smtp_reply(s, "421 4.3.0 %s Error: resource shortage", s->emu->hostname);
    session_end(s, OUTCOME_ERROR, "out of memory");
}

/* ------------------------------------------------------------------ */
/* The command table                                                   */

#define CMD_PRE_HELO 0x1      /* allowed before HELO/EHLO */
#define CMD_PRE_TLS 0x2       /* allowed before STARTTLS when TLS is required */
#define CMD_LAST 0x4          /* must end a pipelined group (RFC 2920) */
#define CMD_REJECT_ALL_OK 0x8 /* still served after a 5xx greeting */

struct smtp_cmd {
    const char *name;
    enum smtp_verb verb;
    unsigned flags;
    /* Syntax and state; replies and returns false on an error. */
    bool (*check)(struct smtp_session *s);
    /* Acts; asks the scenario itself where a stage applies. */
    void (*proceed)(struct smtp_session *s);
};

/* --- HELO / EHLO --- */

static bool
check_helo(struct smtp_session *s)
{
    if (s->cmd.args_len == 0) {
        smtp_reply_cmd(s, "501 Syntax: %s hostname",
                       s->cmd.verb == SMTP_VERB_EHLO ? "EHLO" : "HELO");
        return false;
    }
    return true;
}

static void
send_ehlo(struct smtp_session *s)
{
    char text[1024];
    struct buf b = {0};
    const char *custom = s->script ? script_ehlo_keywords(s->script) : NULL;
    buf_printf(&b, "250-%s\n", s->emu->hostname);
    if (custom) {
        /* The scenario's list: one keyword per line, in its order. */
        const char *p = custom;
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            if (n)
                buf_printf(&b, "250-%.*s\n", (int)n, p);
            p += n + (nl ? 1 : 0);
        }
    } else {
        /* Postfix's order (smtpd.c ehlo_cmd), without VRFY and ETRN. */
        buf_append_str(&b, "250-PIPELINING\n");
        buf_printf(&b, "250-SIZE %llu\n",
                   (unsigned long long)s->emu->cfg->max_message_size);
        if (s->emu->tls && s->tls == NULL)
            buf_append_str(&b, "250-STARTTLS\n");
        buf_append_str(&b, "250-AUTH PLAIN LOGIN XOAUTH2\n"
                           "250-ENHANCEDSTATUSCODES\n"
                           "250-8BITMIME\n"
                           "250-DSN\n"
                           "250-SMTPUTF8\n"
                           "250-CHUNKING\n");
    }
    if (b.data == NULL) {
        resource_shortage(s);
        return;
    }
    b.len--; /* the last '\n' */
    str_copy(text, sizeof(text), b.data);
    buf_cleanup(&b);
    smtp_reply(s, "%s", text);
}

static void
helo_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    int code = decision_code(d);
    if (code >= 400) {
        reply_decision(s, d);
        return;
    }
    /* A repeated HELO/EHLO starts over (RFC 5321 4.1.4). */
    tx_reset(s);
    char *h = emu_strndup(s->cmd.args, s->cmd.args_len);
    if (h == NULL) {
        resource_shortage(s);
        return;
    }
    emu_free(s->helo);
    s->helo = h;
    if (s->rec)
        store_session_set(&s->emu->store, &s->rec->helo, h);
    if (s->cmd.verb == SMTP_VERB_EHLO)
        s->flags |= SF_ESMTP;
    else
        s->flags &= ~SF_ESMTP;
    if (code > 0)
        reply_decision(s, d);
    else if (s->cmd.verb == SMTP_VERB_EHLO)
        send_ehlo(s);
    else
        smtp_reply(s, "250 %s", s->emu->hostname);
}

static void
proceed_helo(struct smtp_session *s)
{
    decide(s, STAGE_EHLO, helo_decided);
}

/* --- MAIL --- */

static bool
require_helo(struct smtp_session *s)
{
    if (s->helo == NULL) {
        smtp_reply_cmd(s, "503 5.5.1 Error: send HELO/EHLO first");
        return false;
    }
    return true;
}

static bool
param_is(const struct smtp_param *p, const char *key)
{
    return p->key_len == strlen(key) && str_ieq_n(p->key, key, p->key_len);
}

static void
reply_unsupported(struct smtp_session *s, const struct smtp_param *p)
{
    smtp_reply_cmd(s, "555 5.5.4 Unsupported option: %.*s",
                   (int)(p->key_len + (p->val ? p->val_len + 1 : 0)), p->key);
}

static bool
xtext_ok(const struct smtp_param *p)
{
    char tmp[1024];
    return p->val &&
           smtp_xtext_decode(p->val, p->val_len, tmp, sizeof(tmp)) >= 0;
}

static bool
check_mail(struct smtp_session *s)
{
    if (!require_helo(s))
        return false;
    if (in_tx(s)) {
        smtp_reply_cmd(s, "503 5.5.1 Error: nested MAIL command");
        return false;
    }
    if (bdat_active(s)) {
        smtp_reply_cmd(s, "503 5.5.1 Error: MAIL after BDAT");
        return false;
    }
    enum smtp_parse_result r =
        smtp_parse_mail(s->cmd.args, s->cmd.args_len, &s->env);
    if (r == PARSE_SYNTAX || r == PARSE_TOO_MANY) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return false;
    }
    if (r == PARSE_BAD_ADDRESS) {
        smtp_reply_cmd(s, "501 5.1.7 Bad sender address syntax");
        return false;
    }
    bool utf8 = false, ret = false, envid = false;
    for (size_t i = 0; i < s->env.n_params; i++) {
        const struct smtp_param *p = &s->env.params[i];
        if (param_is(p, "SIZE")) {
            uint64_t sz;
            if (!p->val || smtp_parse_u64(p->val, p->val_len, &sz) < 0) {
                smtp_reply_cmd(s, "501 5.5.4 Bad message size syntax");
                return false;
            }
            s->declared_size = sz;
            if (sz > s->emu->cfg->max_message_size) {
                smtp_reply_cmd(s, "552 5.3.4 Message size exceeds fixed "
                                  "limit");
                return false;
            }
        } else if (param_is(p, "BODY") && p->val &&
                   ((p->val_len == 4 && str_ieq_n(p->val, "7BIT", 4)) ||
                    (p->val_len == 8 && str_ieq_n(p->val, "8BITMIME", 8)))) {
            /* RFC 6152; anything else (BINARYMIME) is unsupported. */
        } else if (param_is(p, "SMTPUTF8")) {
            if (p->val) {
                reply_unsupported(s, p);
                return false;
            }
            utf8 = true;
        } else if (param_is(p, "RET")) {
            if (!p->val || ret ||
                !((p->val_len == 4 && str_ieq_n(p->val, "FULL", 4)) ||
                  (p->val_len == 4 && str_ieq_n(p->val, "HDRS", 4)))) {
                smtp_reply_cmd(s, "501 5.5.4 Bad RET parameter syntax");
                return false;
            }
            ret = true;
        } else if (param_is(p, "ENVID")) {
            if (envid || !xtext_ok(p)) {
                smtp_reply_cmd(s, "501 5.5.4 Bad ENVID parameter syntax");
                return false;
            }
            envid = true;
        } else if (param_is(p, "AUTH")) {
            /* RFC 4954 5: accepted and otherwise ignored. */
        } else {
            reply_unsupported(s, p);
            return false;
        }
    }
    if (!s->env.path.ascii && !utf8) {
        smtp_reply_cmd(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode "
                          "address");
        return false;
    }
    if (utf8)
        s->flags |= SF_SMTPUTF8;
    return true;
}

static void
mail_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    int code = decision_code(d);
    if (code >= 400) {
        s->flags &= ~SF_SMTPUTF8;
        reply_decision(s, d);
        return;
    }
    const struct smtp_path *p = &s->env.path;
    s->mail_from = emu_strndup(p->null_path ? "" : p->addr,
                               p->null_path ? 0 : p->addr_len);
    buf_reset(&s->mail_params, 256);
    const char *params = p->null_path ? NULL : p->addr + p->addr_len;
    if (s->env.n_params) {
        params = s->env.params[0].key;
        const char *end = s->cmd.args + s->cmd.args_len;
        buf_append(&s->mail_params, params, (size_t)(end - params));
    }
    if (s->mail_from == NULL) {
        resource_shortage(s);
        return;
    }
    if (code > 0)
        reply_decision(s, d);
    else
        smtp_reply_fixed(s, "250 2.1.0 Ok\r\n");
}

static void
proceed_mail(struct smtp_session *s)
{
    decide(s, STAGE_MAIL, mail_decided);
}

/* --- RCPT --- */

/* RFC 3461 4.1: NEVER alone, or any of SUCCESS, FAILURE, DELAY. */
static bool
notify_ok(const struct smtp_param *p)
{
    if (p->val == NULL || p->val_len == 0)
        return false;
    size_t i = 0;
    unsigned n = 0;
    bool never = false;
    while (i <= p->val_len) {
        const char *v = p->val + i;
        const char *comma = memchr(v, ',', p->val_len - i);
        size_t len = comma ? (size_t)(comma - v) : p->val_len - i;
        if (len == 5 && str_ieq_n(v, "NEVER", 5))
            never = true;
        else if (!((len == 7 && str_ieq_n(v, "SUCCESS", 7)) ||
                   (len == 7 && str_ieq_n(v, "FAILURE", 7)) ||
                   (len == 5 && str_ieq_n(v, "DELAY", 5))))
            return false;
        n++;
        i += len + 1;
    }
    return !(never && n > 1);
}

/* RFC 3461 4.2: addr-type ";" xtext. */
static bool
orcpt_ok(const struct smtp_param *p)
{
    if (p->val == NULL)
        return false;
    const char *semi = memchr(p->val, ';', p->val_len);
    if (semi == NULL || semi == p->val)
        return false;
    char tmp[1024];
    size_t rest = p->val_len - (size_t)(semi + 1 - p->val);
    return rest > 0 && smtp_xtext_decode(semi + 1, rest, tmp, sizeof(tmp)) >= 0;
}

static bool
check_rcpt(struct smtp_session *s)
{
    if (!require_helo(s))
        return false;
    if (!in_tx(s)) {
        smtp_reply_cmd(s, "503 5.5.1 Error: need MAIL command");
        return false;
    }
    if (bdat_active(s)) {
        smtp_reply_cmd(s, "503 5.5.1 Error: RCPT after BDAT");
        return false;
    }
    enum smtp_parse_result r =
        smtp_parse_rcpt(s->cmd.args, s->cmd.args_len, &s->env);
    if (r == PARSE_SYNTAX || r == PARSE_TOO_MANY) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return false;
    }
    if (r == PARSE_BAD_ADDRESS) {
        smtp_reply_cmd(s, "501 5.1.3 Bad recipient address syntax");
        return false;
    }
    if (s->n_rcpts >= s->emu->cfg->max_recipients) {
        smtp_reply_cmd(s, "452 4.5.3 Error: too many recipients");
        return false;
    }
    bool notify = false, orcpt = false;
    for (size_t i = 0; i < s->env.n_params; i++) {
        const struct smtp_param *p = &s->env.params[i];
        if (param_is(p, "NOTIFY")) {
            if (notify || !notify_ok(p)) {
                smtp_reply_cmd(s, "501 5.5.4 Error: Bad NOTIFY parameter "
                                  "syntax");
                return false;
            }
            notify = true;
        } else if (param_is(p, "ORCPT")) {
            if (orcpt || !orcpt_ok(p)) {
                smtp_reply_cmd(s, "501 5.5.4 Error: Bad ORCPT parameter "
                                  "syntax");
                return false;
            }
            orcpt = true;
        } else {
            reply_unsupported(s, p);
            return false;
        }
    }
    if (!s->env.path.ascii && !(s->flags & SF_SMTPUTF8)) {
        smtp_reply_cmd(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode "
                          "address");
        return false;
    }
    return true;
}

static void
rcpt_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    int code = decision_code(d);
    if (code >= 400) {
        s->n_rcpt_refused++;
        reply_decision(s, d);
        return;
    }
    if (add_rcpt(s, s->env.path.addr, s->env.path.addr_len) < 0) {
        resource_shortage(s);
        return;
    }
    if (code > 0)
        reply_decision(s, d);
    else
        smtp_reply_fixed(s, "250 2.1.5 Ok\r\n");
}

static void
proceed_rcpt(struct smtp_session *s)
{
    decide(s, STAGE_RCPT, rcpt_decided);
}

/* --- DATA and the end of a message --- */

static bool
check_data(struct smtp_session *s)
{
    if (bdat_active(s)) {
        smtp_reply_cmd(s, "503 5.5.1 Error: DATA after BDAT");
        return false;
    }
    if (!require_helo(s))
        return false;
    if (s->n_rcpts == 0) {
        /* Postfix: with no MAIL the client forgot RCPT too; with MAIL
         * and only refused RCPTs, a pipelining client sends DATA anyway. */
        if (!in_tx(s))
            smtp_reply_cmd(s, "503 5.5.1 Error: need RCPT command");
        else
            smtp_reply_cmd(s, "554 5.5.1 Error: no valid recipients");
        return false;
    }
    if (s->cmd.args_len) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: DATA");
        return false;
    }
    return true;
}

static void
data_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    int code = decision_code(d);
    if (code >= 400 || (code > 0 && code / 100 != 3)) {
        reply_decision(s, d);
        return;
    }
    buf_cleanup(&s->msg);
    /* One allocation for most messages instead of a doubling series. */
    buf_reserve(&s->msg, s->declared_size && s->declared_size < (1 << 24)
                             ? (size_t)s->declared_size + 64
                             : 8192);
    data_reader_init(&s->dr, &s->msg, s->emu->cfg->max_message_size);
    s->body_raw = 0;
    s->cut_bytes = d->cut_bytes;
    s->cut_then = d->cut_then;
    s->cut_hang_ms = d->hang_ms;
    set_state(s, SMTP_STATE_DATA);
    if (code > 0)
        reply_decision(s, d);
    else
        smtp_reply_fixed(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
}

static void
proceed_data(struct smtp_session *s)
{
    decide(s, STAGE_DATA, data_decided);
}

/* "%zu" into out (at least 21 bytes) without printf. */
static void
fmt_size(char *out, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
}

/* Store the message (spool first when configured) and fill `id`. Returns
 * 0, or -1 after replying with the failure. */
static int
store_message(struct smtp_session *s, char *id, size_t idcap)
{
    struct emu *e = s->emu;
    /* One block for the struct and its envelope. */
    struct store_msg *m = store_msg_new(
        s->mail_from, s->mail_params.data ? s->mail_params.data : "",
        s->mail_params.len, (const char *const *)s->rcpts, s->n_rcpts,
        s->helo ? s->helo : "", s->auth_user_final);
    if (m == NULL)
        goto nomem;
    make_queue_id(s, id, idcap);
    str_copy(m->id, sizeof(m->id), id);
    m->session_id = s->id;
    m->time = now(s);
    str_copy(m->client_ip, sizeof(m->client_ip), s->client_ip);
    m->tls = s->tls != NULL;
    m->data = buf_steal(&s->msg, &m->size);
    if (m->data == NULL && (m->data = emu_strdup("")) == NULL)
        goto nomem;
    if (e->cfg->spool_dir) {
        char err[512];
        uint64_t seq = atomic_fetch_add(&e->spool_seq, 1);
        if (spool_write(e->cfg->spool_dir, e->hostname, seq, m, err,
                        sizeof(err)) < 0) {
            struct log_kv kv[] = {LOG_KV("error", err)};
            slog(s, LOG_LEVEL_ERROR, "spool-error", kv, 1);
            store_msg_free(m);
            smtp_reply_cmd(s, "451 4.3.0 Error: queue file write error");
            return -1;
        }
    }
    metrics_inc(&e->metrics.messages_accepted);
    metrics_add(&e->metrics.bytes_accepted, m->size);
    if (log_on(s, LOG_LEVEL_INFO)) {
        char size[24], nrcpt[24];
        fmt_size(size, m->size);
        fmt_size(nrcpt, m->n_rcpts);
        struct log_kv kv[] = {LOG_KV("id", id), LOG_KV("from", m->mail_from),
                              LOG_KV("rcpts", nrcpt), LOG_KV("size", size)};
        slog(s, LOG_LEVEL_INFO, "message", kv, 4);
    }
    store_put_message(&e->store, m);
    s->messages++;
    return 0;
nomem:
    store_msg_free(m);
    resource_shortage(s);
    return -1;
}

/* "250 2.0.0 Ok: queued as ID", the reply to every accepted message:
 * assembled with two copies instead of printf and reply parsing. */
static void
reply_queued(struct smtp_session *s, const char *id)
{
    static const char head[] = "250 2.0.0 Ok: queued as ";
    char line[sizeof(head) + 32];
    size_t il = strlen(id);
    if (il > 24) { /* never: queue IDs are 12 characters */
        smtp_reply(s, "250 2.0.0 Ok: queued as %s", id);
        return;
    }
    memcpy(line, head, sizeof(head) - 1);
    memcpy(line + sizeof(head) - 1, id, il);
    memcpy(line + sizeof(head) - 1 + il, "\r\n", 3);
    smtp_reply_fixed(s, line);
}

static void
message_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d)) {
        tx_reset(s);
        return;
    }
    int code = decision_code(d);
    bool bdat = (s->flags & SF_BDAT) != 0;
    size_t size = s->msg.len;
    if (code >= 400) {
        reply_decision(s, d);
    } else {
        char id[24];
        if (store_message(s, id, sizeof(id)) == 0) {
            if (code > 0)
                reply_decision(s, d);
            else if (bdat)
                smtp_reply(s, "250 2.0.0 Ok: %zu bytes queued as %s", size, id);
            else
                reply_queued(s, id);
        }
    }
    if (!(s->flags & SF_DEAD))
        tx_reset(s);
}

/* The whole message has arrived (final dot, or BDAT LAST). */
static void
message_complete(struct smtp_session *s, bool overflow, bool nomem)
{
    set_state(s, SMTP_STATE_CMD);
    if (nomem) {
        tx_reset(s);
        resource_shortage(s);
        return;
    }
    if (overflow) {
        /* Postfix's cleanup status for a message over message_size_limit:
         * the reply comes after the data, and nothing is kept. */
        s->cur_stage = STAGE_MESSAGE;
        smtp_reply_cmd(s, "552 5.3.4 Error: message file too big");
        tx_reset(s);
        return;
    }
    decide(s, STAGE_MESSAGE, message_decided);
}

/* Record the raw body in the transcript, bounded per message. */
static void
note_body(struct smtp_session *s, const char *p, size_t n)
{
    if (s->body_logged >= TRANSCRIPT_BODY_MAX)
        return;
    size_t room = (size_t)(TRANSCRIPT_BODY_MAX - s->body_logged);
    size_t take = n < room ? n : room;
    transcript(s, TR_CLIENT, p, take);
    s->body_logged += take;
    if (take < n) {
        static const char cut[] = "[message body cut from the transcript]";
        transcript(s, TR_NOTE, cut, sizeof(cut) - 1);
    }
}

/* How many more body bytes may be read before the scenario's cut. */
static size_t
body_allowance(const struct smtp_session *s, size_t want)
{
    if (s->cut_bytes == 0)
        return want;
    uint64_t left = s->cut_bytes > s->body_raw ? s->cut_bytes - s->body_raw : 0;
    return want < left ? want : (size_t)left;
}

/* The body reached the scenario's cut: end the conversation as asked. */
static bool
body_cut_due(struct smtp_session *s)
{
    if (s->cut_bytes == 0 || s->body_raw < s->cut_bytes)
        return false;
    s->cut_bytes = 0;
    s->cur_stage = STAGE_DATA;
    char n[64];
    snprintf(n, sizeof(n), "%llu", (unsigned long long)s->body_raw);
    struct log_kv kv[] = {LOG_KV("after_bytes", n),
                          LOG_KV("then", decide_then_name(s->cut_then))};
    slog(s, LOG_LEVEL_INFO, "scenario-cut", kv, 2);
    tx_reset(s);
    apply_then(s, s->cut_then, s->cut_hang_ms);
    return true;
}

/* Feed buffered input to the DATA reader. Returns true when progress was
 * made and the caller should look at the input again. */
static bool
read_data(struct smtp_session *s)
{
    struct iovec v[8];
    int n = net_conn_peek(s->conn, v, 8);
    if (n == 0)
        return false;
    size_t used_total = 0;
    for (int i = 0; i < n && !data_reader_done(&s->dr); i++) {
        size_t len = body_allowance(s, v[i].iov_len);
        size_t used = data_reader_feed(&s->dr, v[i].iov_base, len);
        note_body(s, v[i].iov_base, used);
        used_total += used;
        s->body_raw += used;
        if (used < v[i].iov_len)
            break;
    }
    net_conn_drain(s->conn, used_total);
    if (!data_reader_done(&s->dr) && body_cut_due(s))
        return false;
    if (data_reader_done(&s->dr)) {
        message_complete(s, s->dr.overflow, s->dr.nomem);
        return true;
    }
    return used_total > 0;
}

/* --- BDAT (RFC 3030) --- */

/* Read and throw away this chunk, then answer `reply` (Postfix's
 * skip_bdat): a refused LAST chunk ends the transaction, any other refused
 * chunk puts BDAT into its error state until LAST or RSET. */
static void
bdat_skip(struct smtp_session *s, const char *reply)
{
    s->flags |= SF_BDAT_DISCARD;
    buf_reset(&s->line, LINE_KEEP);
    buf_append_str(&s->line, reply);
    set_state(s, SMTP_STATE_BDAT);
}

static bool
check_bdat(struct smtp_session *s)
{
    uint64_t size;
    bool last;
    if (smtp_parse_bdat(s->cmd.args, s->cmd.args_len, &size, &last) !=
        PARSE_OK) {
        /* The chunk size is unknown, so the byte stream cannot be followed
         * any further: Postfix answers 521 and hangs up. */
        smtp_reply_cmd(s, "521 5.5.4 Syntax: BDAT count [LAST]");
        return false;
    }
    s->bdat_remaining = size;
    s->flags &= ~(SF_BDAT_DISCARD | SF_BDAT_LAST);
    if (last)
        s->flags |= SF_BDAT_LAST;
    char err[128];
    if (size == 0 && !last) {
        bdat_skip(s, "551 5.7.1 Null BDAT request");
        return false;
    }
    if (s->flags & SF_BDAT_ERROR) {
        snprintf(err, sizeof(err),
                 "551 5.0.0 Discarded %llu bytes after earlier error",
                 (unsigned long long)size);
        bdat_skip(s, err);
        return false;
    }
    if (!(s->flags & SF_BDAT) && s->n_rcpts == 0) {
        bdat_skip(s, in_tx(s) ? "554 5.5.1 Error: no valid recipients"
                              : "503 5.5.1 Error: need RCPT command");
        return false;
    }
    if (s->msg.len + size > s->emu->cfg->max_message_size) {
        bdat_skip(s, "552 5.3.4 Chunk exceeds message size limit");
        return false;
    }
    return true;
}

static void
bdat_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    int code = decision_code(d);
    if (code >= 400) {
        /* Refused at the data stage: read the chunk, then reply. */
        decision_cleanup(&s->pending);
        s->pending = *d;
        decision_init(d);
        bdat_skip(s, "");
        return;
    }
    s->flags |= SF_BDAT;
    s->body_raw = 0;
    s->cut_bytes = d->cut_bytes;
    s->cut_then = d->cut_then;
    s->cut_hang_ms = d->hang_ms;
    set_state(s, SMTP_STATE_BDAT);
}

static void
proceed_bdat(struct smtp_session *s)
{
    if (s->flags & SF_BDAT) {
        set_state(s, SMTP_STATE_BDAT); /* later chunks: no new decision */
        return;
    }
    decide(s, STAGE_DATA, bdat_decided);
}

/* The chunk has been read. */
static void
bdat_chunk_done(struct smtp_session *s, uint64_t chunk)
{
    bool last = (s->flags & SF_BDAT_LAST) != 0;
    set_state(s, SMTP_STATE_CMD);
    if (s->flags & SF_BDAT_DISCARD) {
        s->flags &= ~SF_BDAT_DISCARD;
        s->cur_stage = STAGE_DATA;
        if (s->pending.kind != DECIDE_DEFAULT && s->pending_fn == NULL) {
            struct decision d = s->pending;
            decision_init(&s->pending);
            reply_decision(s, &d);
            decision_cleanup(&d);
        } else {
            smtp_reply_cmd(s, "%s", s->line.data ? s->line.data : "");
        }
        if (last)
            tx_reset(s);
        else
            s->flags |= SF_BDAT_ERROR;
        return;
    }
    if (!last) {
        smtp_reply(s, "250 2.0.0 Ok: %llu bytes", (unsigned long long)chunk);
        return;
    }
    message_complete(s, false, false);
}

static bool
read_bdat(struct smtp_session *s)
{
    size_t avail = net_conn_in_len(s->conn);
    if (s->bdat_remaining > 0 && avail == 0)
        return false;
    if (s->bdat_chunk == 0)
        s->bdat_chunk = s->bdat_remaining;
    size_t take = s->bdat_remaining < avail ? (size_t)s->bdat_remaining : avail;
    if (take > 0) {
        struct iovec v[8];
        size_t left = take;
        int n = net_conn_peek(s->conn, v, 8);
        for (int i = 0; i < n && left > 0; i++) {
            size_t k = v[i].iov_len < left ? v[i].iov_len : left;
            note_body(s, v[i].iov_base, k);
            if (!(s->flags & SF_BDAT_DISCARD) &&
                buf_append(&s->msg, v[i].iov_base, k) < 0) {
                net_conn_drain(s->conn, take - left);
                tx_reset(s);
                set_state(s, SMTP_STATE_CMD);
                resource_shortage(s);
                return false;
            }
            left -= k;
        }
        take -= left;
        net_conn_drain(s->conn, take);
        s->bdat_remaining -= take;
        if (!(s->flags & SF_BDAT_DISCARD))
            s->body_raw += take;
    }
    if (!(s->flags & SF_BDAT_DISCARD) && s->bdat_remaining > 0 &&
        body_cut_due(s))
        return false;
    if (s->bdat_remaining == 0) {
        uint64_t chunk = s->bdat_chunk;
        s->bdat_chunk = 0;
        bdat_chunk_done(s, chunk);
        return true;
    }
    return take > 0;
}

/* --- RSET, NOOP, QUIT, VRFY, HELP --- */

static bool
check_rset(struct smtp_session *s)
{
    if (s->cmd.args_len) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: RSET");
        return false;
    }
    return true;
}

static void
proceed_rset(struct smtp_session *s)
{
    tx_reset(s);
    smtp_reply_fixed(s, "250 2.0.0 Ok\r\n");
}

static void
proceed_noop(struct smtp_session *s)
{
    smtp_reply_fixed(s, "250 2.0.0 Ok\r\n");
}

static void
quit_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    if (decision_code(d) > 0)
        reply_decision(s, d);
    else
        smtp_reply_fixed(s, "221 2.0.0 Bye\r\n");
    s->flags |= SF_CLOSE_AFTER_REPLY;
    set_state(s, SMTP_STATE_QUIT);
}

static void
proceed_quit(struct smtp_session *s)
{
    decide(s, STAGE_QUIT, quit_decided);
}

static void
proceed_vrfy(struct smtp_session *s)
{
    /* Postfix with disable_vrfy_command = yes: no address harvesting. */
    smtp_reply_cmd(s, "502 5.5.1 VRFY command is disabled");
}

static void proceed_help(struct smtp_session *s);

/* --- STARTTLS (RFC 3207) --- */

static bool
check_starttls(struct smtp_session *s)
{
    if (s->emu->tls == NULL) {
        smtp_reply_cmd(s, "502 5.5.1 Error: command not implemented");
        return false;
    }
    if (s->cmd.args_len) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: STARTTLS");
        return false;
    }
    if (s->tls) {
        smtp_reply_cmd(s, "554 5.5.1 Error: TLS already active");
        return false;
    }
    return true;
}

static void
starttls_cmd_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    int code = decision_code(d);
    if (code > 0 && code != 220) {
        reply_decision(s, d);
        return;
    }
    if (code == 220)
        reply_decision(s, d);
    else
        smtp_reply(s, "220 2.0.0 Ready to start TLS");
    /* The handshake starts once the 220 has left (NET_EV_DRAINED). */
    set_state(s, SMTP_STATE_TLS_PENDING);
    net_conn_read_enable(s->conn, false);
}

static void
proceed_starttls(struct smtp_session *s)
{
    struct decision d;
    decision_init(&d);
    s->cur_stage = STAGE_STARTTLS;
    starttls_cmd_decided(s, &d);
}

/* The TLS set-up for a handshake: the server's own, or the variant the
 * scenario's on_tls asks for (another certificate, other versions). A
 * terminal decision (drop, reset, hang) is left in `d` for the caller. */
static struct net_tls *
tls_choose(struct smtp_session *s, struct decision *d)
{
    struct emu *e = s->emu;
    if (s->script == NULL || !script_has_hook(s->script, HOOK_TLS))
        return e->tls;
    s->cur_stage = STAGE_STARTTLS;
    script_tls(s->script, d);
    if (d->kind == DECIDE_REPLY || d->kind == DECIDE_REPLY_CLOSE) {
        /* No reply fits before a handshake (a scenario error gives 451
         * here): keep the server's own set-up. */
        decision_cleanup(d);
        decision_init(d);
        return e->tls;
    }
    if ((d->tls_cert[0] || d->tls_versions[0]) && e->tls_cache) {
        char err[256];
        struct net_tls *t = net_tls_cache_get(
            e->tls_cache, d->tls_cert, d->tls_versions, err, sizeof(err));
        if (t)
            return t;
        struct log_kv kv[] = {LOG_KV("error", err)};
        slog(s, LOG_LEVEL_ERROR, "script-error", kv, 1);
        metrics_inc(&e->metrics.scenario_errors);
    }
    return e->tls;
}

static void
tls_start(struct smtp_session *s)
{
    size_t discarded = 0;
    struct decision d;
    decision_init(&d);
    struct net_tls *ctx = tls_choose(s, &d);
    if (apply_terminal(s, &d)) {
        decision_cleanup(&d);
        return;
    }
    decision_cleanup(&d);
    if (net_conn_start_tls(s->conn, ctx, &discarded) < 0) {
        session_end(s, OUTCOME_ERROR, "TLS setup failed");
        return;
    }
    set_state(s, SMTP_STATE_TLS_HANDSHAKE);
    net_conn_read_enable(s->conn, true);
    if (discarded) {
        /* CVE-2011-0411: plaintext sent after STARTTLS must not be run as
         * if it had come over TLS. */
        char n[24];
        snprintf(n, sizeof(n), "%zu", discarded);
        struct log_kv kv[] = {LOG_KV("bytes", n)};
        slog(s, LOG_LEVEL_WARN, "starttls-injection", kv, 1);
        transcript(s, TR_NOTE, "plaintext after STARTTLS discarded", 34);
    }
}

static void
starttls_done_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    if (decision_code(d) > 0)
        reply_decision(s, d); /* unsolicited, like Postfix's 421 4.7.1 */
}

static void
tls_ready(struct smtp_session *s)
{
    struct net_tls_info *t = emu_calloc(1, sizeof(*t));
    if (t == NULL) {
        resource_shortage(s);
        return;
    }
    net_conn_tls_info(s->conn, t);
    emu_free(s->tls);
    s->tls = t;
    metrics_inc(&s->emu->metrics.tls_handshakes);
    if (log_on(s, LOG_LEVEL_INFO)) {
        struct log_kv kv[] = {
            LOG_KV("version", t->version), LOG_KV("cipher", t->cipher),
            LOG_KV("client_cert", t->client_cert ? t->subject : "none"),
            LOG_KV("verified", t->verified ? "yes" : "no")};
        slog(s, LOG_LEVEL_INFO, "tls", kv, 4);
    }
    if (s->rec) {
        struct store *st = &s->emu->store;
        store_lock(st);
        s->rec->tls = true;
        str_copy(s->rec->tls_version, sizeof(s->rec->tls_version), t->version);
        str_copy(s->rec->tls_cipher, sizeof(s->rec->tls_cipher), t->cipher);
        s->rec->client_cert = t->client_cert;
        s->rec->cert_verified = t->verified;
        store_unlock(st);
        if (t->client_cert) {
            store_session_set(st, &s->rec->cert_subject, t->subject);
            store_session_set(st, &s->rec->cert_issuer, t->issuer);
            store_session_set(st, &s->rec->cert_sans, t->sans);
            if (!t->verified)
                store_session_set(st, &s->rec->cert_error, t->verify_error);
        }
    }
    char note[128];
    int n = snprintf(note, sizeof(note), "TLS established: %s %s", t->version,
                     t->cipher);
    transcript(s, TR_NOTE, note, (size_t)n);
    if (s->state == SMTP_STATE_TLS_ACCEPT) {
        /* Implicit TLS: the conversation starts now. */
        set_state(s, SMTP_STATE_CMD);
        session_greet(s);
        return;
    }
    /* RFC 3207 4.2: forget everything learned before the handshake. */
    tx_reset(s);
    emu_free(s->helo);
    s->helo = NULL;
    s->flags &= ~(SF_ESMTP | SF_AUTHED);
    emu_free(s->auth_user_final);
    s->auth_user_final = NULL;
    set_state(s, SMTP_STATE_CMD);
    decide(s, STAGE_STARTTLS, starttls_done_decided);
}

/* --- AUTH (RFC 4954) --- */

static bool
check_auth(struct smtp_session *s)
{
    if (!require_helo(s))
        return false;
    if (s->flags & SF_AUTHED) {
        smtp_reply_cmd(s, "503 5.5.1 Error: already authenticated");
        return false;
    }
    if (in_tx(s)) {
        smtp_reply_cmd(s, "503 5.5.1 Error: MAIL transaction in progress");
        return false;
    }
    const char *mech, *initial;
    size_t mech_len, initial_len;
    if (s->cmd.args_len == 0 ||
        smtp_parse_auth(s->cmd.args, s->cmd.args_len, &mech, &mech_len,
                        &initial, &initial_len) != PARSE_OK) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: AUTH mechanism");
        return false;
    }
    s->auth_mech = sasl_mech_parse(mech, mech_len);
    if (s->auth_mech == SASL_MECH_UNKNOWN) {
        smtp_reply_cmd(s, "535 5.7.8 Error: authentication failed: Invalid "
                          "authentication mechanism");
        return false;
    }
    return true;
}

static void
auth_clear(struct smtp_session *s)
{
    /* Wipe credentials as soon as they are no longer needed. */
    if (s->auth_secret.data)
        memset(s->auth_secret.data, 0, s->auth_secret.cap);
    buf_cleanup(&s->auth_secret);
    buf_cleanup(&s->auth_user);
    s->auth_step = 0;
}

static void
auth_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d)) {
        auth_clear(s);
        return;
    }
    int code = decision_code(d);
    if (code >= 400 || (code > 0 && code != 235 && code != 334)) {
        auth_clear(s);
        reply_decision(s, d);
        return;
    }
    if (code == 334) {
        /* The scenario sends a challenge (Gmail's XOAUTH2 error JSON);
         * the client's answer is read, then the scenario is asked again
         * at the auth stage with auth_step advanced. */
        reply_decision(s, d);
        s->auth_step = 100;
        set_state(s, SMTP_STATE_AUTH);
        return;
    }
    char *user = emu_strndup(s->auth_user.data ? s->auth_user.data : "",
                             s->auth_user.len);
    auth_clear(s);
    if (user == NULL) {
        resource_shortage(s);
        return;
    }
    emu_free(s->auth_user_final);
    s->auth_user_final = user;
    s->flags |= SF_AUTHED;
    if (s->rec) {
        store_session_set(&s->emu->store, &s->rec->auth_user, user);
        store_session_set(&s->emu->store, &s->rec->auth_mech,
                          sasl_mech_name(s->auth_mech));
    }
    struct log_kv kv[] = {LOG_KV("mechanism", sasl_mech_name(s->auth_mech)),
                          LOG_KV("user", user)};
    slog(s, LOG_LEVEL_INFO, "auth", kv, 2);
    if (code > 0)
        reply_decision(s, d);
    else
        smtp_reply(s, "235 2.7.0 Authentication successful");
}

static void
auth_fail(struct smtp_session *s, const char *why)
{
    auth_clear(s);
    set_state(s, SMTP_STATE_CMD);
    smtp_reply_cmd(s, "535 5.7.8 Error: authentication failed: %s", why);
}

/* One base64 response from the client (initial or continued). */
static void
auth_step(struct smtp_session *s, const char *b64, size_t len, bool initial)
{
    char dec[BASE64_DECODED_MAX(AUTH_LINE_MAX)];
    long n = 0;
    if (!(len == 1 && b64[0] == '=') && len > 0) {
        n = base64_decode(b64, len, (unsigned char *)dec, sizeof(dec));
        if (n < 0) {
            auth_fail(s, initial ? "Invalid base64 data in initial response"
                                 : "Invalid base64 data in continued "
                                   "response");
            return;
        }
    }
    if (s->auth_step == 100) {
        /* Answer to a scenario challenge: ask the scenario again. */
        s->auth_step = 101;
        set_state(s, SMTP_STATE_CMD);
        decide(s, STAGE_AUTH, auth_decided);
        return;
    }
    struct sasl_creds cr;
    switch (s->auth_mech) {
    case SASL_MECH_PLAIN:
        if (sasl_decode_plain(dec, (size_t)n, &cr) < 0) {
            auth_fail(s, "authentication failure");
            return;
        }
        buf_append(&s->auth_user, cr.user, cr.user_len);
        buf_append(&s->auth_secret, cr.secret, cr.secret_len);
        break;
    case SASL_MECH_XOAUTH2:
        if (sasl_decode_xoauth2(dec, (size_t)n, &cr) < 0) {
            auth_fail(s, "authentication failure");
            return;
        }
        buf_append(&s->auth_user, cr.user, cr.user_len);
        buf_append(&s->auth_secret, cr.secret, cr.secret_len);
        break;
    case SASL_MECH_LOGIN:
        if (s->auth_step == 0) {
            buf_append(&s->auth_user, dec, (size_t)n);
            s->auth_step = 1;
            set_state(s, SMTP_STATE_AUTH);
            smtp_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
            return;
        }
        buf_append(&s->auth_secret, dec, (size_t)n);
        break;
    case SASL_MECH_UNKNOWN:
        auth_fail(s, "Invalid authentication mechanism");
        return;
    }
    memset(dec, 0, sizeof(dec));
    set_state(s, SMTP_STATE_CMD);
    decide(s, STAGE_AUTH, auth_decided);
}

static void
proceed_auth(struct smtp_session *s)
{
    const char *mech, *initial;
    size_t mech_len, initial_len;
    smtp_parse_auth(s->cmd.args, s->cmd.args_len, &mech, &mech_len, &initial,
                    &initial_len);
    s->auth_step = 0;
    s->cur_stage = STAGE_AUTH;
    if (initial) {
        auth_step(s, initial, initial_len, true);
        return;
    }
    set_state(s, SMTP_STATE_AUTH);
    if (s->auth_mech == SASL_MECH_LOGIN)
        smtp_reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
    else
        smtp_reply(s, "334 ");
}

/* A line read in SMTP_STATE_AUTH. */
static void
auth_line(struct smtp_session *s, const char *p, size_t len)
{
    /* Credentials never reach the log or the transcript. */
    note_client_line(s, "***", 3);
    if (len == 1 && p[0] == '*') {
        auth_clear(s);
        set_state(s, SMTP_STATE_CMD);
        smtp_reply_cmd(s, "501 5.7.0 Authentication aborted");
        return;
    }
    if (len > AUTH_LINE_MAX) {
        auth_clear(s);
        set_state(s, SMTP_STATE_CMD);
        smtp_reply_cmd(s, "500 5.5.6 SASL response limit exceeded");
        return;
    }
    auth_step(s, p, len, false);
}

/* --- XCLIENT (Postfix's source-address simulation) --- */

static bool
check_xclient(struct smtp_session *s)
{
    /* Postfix's order: transaction, syntax, then authorization. */
    if (in_tx(s)) {
        smtp_reply_cmd(s, "503 5.5.1 Error: MAIL transaction in progress");
        return false;
    }
    if (s->cmd.args_len == 0) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: XCLIENT attribute=value...");
        return false;
    }
    struct ip_addr peer;
    if (ip_parse(s->peer_ip, strlen(s->peer_ip), &peer) < 0 ||
        !cidr_list_match(&s->emu->cfg->xclient_from, &peer)) {
        smtp_reply_cmd(s, "550 5.7.0 Error: insufficient authorization");
        return false;
    }
    return true;
}

static bool
unavailable(const char *v)
{
    return strcmp(v, "[UNAVAILABLE]") == 0 || strcmp(v, "[TEMPUNAVAIL]") == 0;
}

static void
proceed_xclient(struct smtp_session *s)
{
    struct smtp_param params[SMTP_MAX_PARAMS];
    size_t n = 0;
    if (smtp_parse_params(s->cmd.args, s->cmd.args_len, params, SMTP_MAX_PARAMS,
                          &n) != PARSE_OK) {
        smtp_reply_cmd(s, "501 5.5.4 Syntax: XCLIENT attribute=value...");
        return;
    }
    struct ip_addr addr = s->client_addr;
    uint16_t port = s->client_port;
    char name[256], helo[256];
    bool set_addr = false, set_name = false, set_helo = false, set_port = false;
    for (size_t i = 0; i < n; i++) {
        const struct smtp_param *p = &params[i];
        char v[512];
        if (p->val == NULL || p->val_len == 0) {
            smtp_reply_cmd(s, "501 5.5.4 Error: attribute=value expected");
            return;
        }
        if (p->val_len > 255) {
            smtp_reply_cmd(s, "501 5.5.4 Error: attribute value too long");
            return;
        }
        /* Values are xtext; like Postfix, take a value that does not
         * decode as it is (pre-2.3 clients did not encode). */
        if (smtp_xtext_decode(p->val, p->val_len, v, sizeof(v)) < 0) {
            memcpy(v, p->val, p->val_len);
            v[p->val_len] = '\0';
        }
        if (param_is(p, "ADDR")) {
            if (unavailable(v))
                continue;
            const char *a = v;
            if (strncasecmp(a, "IPV6:", 5) == 0)
                a += 5;
            if (ip_parse(a, strlen(a), &addr) < 0) {
                smtp_reply_cmd(s, "501 5.5.4 Bad ADDR syntax: %s", v);
                return;
            }
            set_addr = true;
        } else if (param_is(p, "PORT")) {
            uint64_t pv;
            if (unavailable(v))
                continue;
            if (smtp_parse_u64(v, strlen(v), &pv) < 0 || pv > 65535) {
                smtp_reply_cmd(s, "501 5.5.4 Bad PORT syntax: %s", v);
                return;
            }
            port = (uint16_t)pv;
            set_port = true;
        } else if (param_is(p, "NAME")) {
            str_copy(name, sizeof(name), unavailable(v) ? "unknown" : v);
            set_name = true;
        } else if (param_is(p, "HELO")) {
            if (!unavailable(v)) {
                str_copy(helo, sizeof(helo), v);
                set_helo = true;
            }
        } else if (param_is(p, "PROTO") || param_is(p, "LOGIN") ||
                   param_is(p, "DESTADDR") || param_is(p, "DESTPORT")) {
            /* Accepted; nothing here depends on them. */
        } else {
            smtp_reply_cmd(s, "501 5.5.4 Bad XCLIENT attribute name: %.*s",
                           (int)p->key_len, p->key);
            return;
        }
    }
    if (set_addr) {
        s->client_addr = addr;
        ip_format(&addr, s->client_ip, sizeof(s->client_ip));
        if (!set_name)
            str_copy(s->client_name, sizeof(s->client_name), "unknown");
    }
    if (set_port)
        s->client_port = port;
    if (set_name)
        str_copy(s->client_name, sizeof(s->client_name), name);
    if (s->rec) {
        store_lock(&s->emu->store);
        str_copy(s->rec->client_ip, sizeof(s->rec->client_ip), s->client_ip);
        s->rec->client_port = s->client_port;
        store_unlock(&s->emu->store);
    }
    struct log_kv kv[] = {LOG_KV("addr", s->client_ip),
                          LOG_KV("name", s->client_name)};
    slog(s, LOG_LEVEL_INFO, "xclient", kv, 2);
    /* Like Postfix: the session starts over as if the simulated client had
     * just connected, greeting included. */
    tx_reset(s);
    emu_free(s->helo);
    s->helo = NULL;
    if (set_helo)
        s->helo = emu_strdup(helo);
    s->flags &= ~(SF_ESMTP | SF_REJECT_ALL);
    session_greet(s);
}

// clang-format off
static const struct smtp_cmd smtp_cmds[] = {
    {"HELO",     SMTP_VERB_HELO,     CMD_PRE_HELO | CMD_PRE_TLS, check_helo,     proceed_helo},
    {"EHLO",     SMTP_VERB_EHLO,     CMD_PRE_HELO | CMD_PRE_TLS, check_helo,     proceed_helo},
    {"XCLIENT",  SMTP_VERB_XCLIENT,  CMD_PRE_HELO | CMD_PRE_TLS | CMD_REJECT_ALL_OK, check_xclient, proceed_xclient},
    {"STARTTLS", SMTP_VERB_STARTTLS, CMD_PRE_TLS | CMD_LAST,     check_starttls, proceed_starttls},
    {"AUTH",     SMTP_VERB_AUTH,     0,                          check_auth,     proceed_auth},
    {"MAIL",     SMTP_VERB_MAIL,     0,                          check_mail,     proceed_mail},
    {"RCPT",     SMTP_VERB_RCPT,     0,                          check_rcpt,     proceed_rcpt},
    {"DATA",     SMTP_VERB_DATA,     CMD_LAST,                   check_data,     proceed_data},
    {"BDAT",     SMTP_VERB_BDAT,     0,                          check_bdat,     proceed_bdat},
    {"RSET",     SMTP_VERB_RSET,     CMD_PRE_HELO | CMD_PRE_TLS, check_rset,     proceed_rset},
    {"NOOP",     SMTP_VERB_NOOP,     CMD_PRE_HELO | CMD_PRE_TLS, NULL,           proceed_noop},
    {"QUIT",     SMTP_VERB_QUIT,     CMD_PRE_HELO | CMD_PRE_TLS | CMD_LAST | CMD_REJECT_ALL_OK, NULL, proceed_quit},
    {"VRFY",     SMTP_VERB_VRFY,     CMD_PRE_HELO,               NULL,           proceed_vrfy},
    {"HELP",     SMTP_VERB_HELP,     CMD_PRE_HELO | CMD_PRE_TLS, NULL,           proceed_help},
};
// clang-format on

/* Postfix 3.x: the command table's names, sorted; like Postfix it does not
 * hide commands that are disabled (RFC 5321 4.1.1.8). */
static void
proceed_help(struct smtp_session *s)
{
    const char *names[EMU_ARRAY_LEN(smtp_cmds)];
    size_t n = 0;
    for (size_t i = 0; i < EMU_ARRAY_LEN(smtp_cmds); i++) {
        size_t k = n++;
        while (k > 0 && strcmp(names[k - 1], smtp_cmds[i].name) > 0) {
            names[k] = names[k - 1];
            k--;
        }
        names[k] = smtp_cmds[i].name;
    }
    char list[256] = "";
    for (size_t i = 0; i < n; i++) {
        strncat(list, " ", sizeof(list) - strlen(list) - 1);
        strncat(list, names[i], sizeof(list) - strlen(list) - 1);
    }
    smtp_reply(s, "214 2.0.0 Commands:%s", list);
}

static const struct smtp_cmd *
cmd_lookup(enum smtp_verb v)
{
    for (size_t i = 0; i < EMU_ARRAY_LEN(smtp_cmds); i++)
        if (smtp_cmds[i].verb == v)
            return &smtp_cmds[i];
    return NULL;
}

/* Handle one complete command line (without its line ending). */
static void dispatch_command(struct smtp_session *s);
static void command_decided(struct smtp_session *s, struct decision *d);

/* The stage a command belongs to, for on_command's logs and metrics. */
static enum smtp_stage
verb_stage(enum smtp_verb v)
{
    switch (v) {
    case SMTP_VERB_HELO:
    case SMTP_VERB_EHLO:
        return STAGE_EHLO;
    case SMTP_VERB_STARTTLS:
        return STAGE_STARTTLS;
    case SMTP_VERB_AUTH:
        return STAGE_AUTH;
    case SMTP_VERB_MAIL:
        return STAGE_MAIL;
    case SMTP_VERB_RCPT:
        return STAGE_RCPT;
    case SMTP_VERB_DATA:
    case SMTP_VERB_BDAT:
        return STAGE_DATA;
    case SMTP_VERB_QUIT:
        return STAGE_QUIT;
    case SMTP_VERB_UNKNOWN:
    case SMTP_VERB_RSET:
    case SMTP_VERB_NOOP:
    case SMTP_VERB_VRFY:
    case SMTP_VERB_HELP:
    case SMTP_VERB_XCLIENT:
    case SMTP_VERB_FORBIDDEN:
        break;
    }
    return STAGE_COUNT;
}

static void
handle_line(struct smtp_session *s, const char *line, size_t len)
{
    if (str_has_prefix_ci(line, len, "AUTH ") && len > 5) {
        /* Log "AUTH PLAIN ***": the initial response is a credential. */
        const char *sp = memchr(line + 5, ' ', len - 5);
        char masked[64];
        int n = snprintf(masked, sizeof(masked), "%.*s%s",
                         (int)(sp ? (size_t)(sp - line) : len), line,
                         sp ? " ***" : "");
        note_client_line(s, masked,
                         (size_t)n < sizeof(masked) ? (size_t)n
                                                    : sizeof(masked) - 1);
    } else {
        note_client_line(s, line, len);
    }
    s->cur_stage = STAGE_COUNT;
    if (memchr(line, '\0', len) != NULL) {
        smtp_reply_cmd(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    if (!str_is_ascii(line, len) && !utf8_valid(line, len)) {
        smtp_reply_cmd(s, "500 5.5.2 Error: bad UTF-8 syntax");
        return;
    }
    if (smtp_parse_command(line, len, &s->cmd) == PARSE_EMPTY) {
        smtp_reply_cmd(s, "500 5.5.2 Error: bad syntax");
        return;
    }
    if (script_has_hook(s->script, HOOK_COMMAND)) {
        /* on_command sees every command first (any verb, even unknown
         * ones), and may answer it instead of the server. */
        char verb[16];
        size_t n = s->cmd.verb_len < sizeof(verb) - 1 ? s->cmd.verb_len
                                                      : sizeof(verb) - 1;
        for (size_t i = 0; i < n; i++) {
            char c = s->cmd.verb_str[i];
            verb[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
        }
        verb[n] = '\0';
        struct decision d;
        decision_init(&d);
        s->cur_stage = verb_stage(s->cmd.verb);
        if (script_command(s->script, verb, s->cmd.args, s->cmd.args_len, &d) ==
            SCRIPT_PENDING) {
            wait_for_script(s, command_decided);
            return;
        }
        if (d.kind != DECIDE_DEFAULT || d.delay_ms > 0 || d.line_delay_ms > 0) {
            decide_apply(s, &d, command_decided);
            return;
        }
        decision_cleanup(&d);
    }
    dispatch_command(s);
}

/* on_command had an answer (or waited): carry it out, or go on. */
static void
command_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    if (d->kind == DECIDE_REPLY || d->kind == DECIDE_REPLY_CLOSE) {
        reply_decision(s, d);
        return;
    }
    dispatch_command(s);
}

/* The server's own handling of the parsed command in s->cmd. */
static void
dispatch_command(struct smtp_session *s)
{
    if (s->cmd.verb == SMTP_VERB_FORBIDDEN) {
        /* An HTTP client (or a header line) at an SMTP port. */
        smtp_reply(s, "221 2.7.0 Error: I can break rules, too. Goodbye.");
        s->flags |= SF_CLOSE_AFTER_REPLY;
        return;
    }
    const struct smtp_cmd *c = cmd_lookup(s->cmd.verb);
    if (c == NULL) {
        smtp_reply_cmd(s, "500 5.5.2 Error: command not recognized");
        return;
    }
    if ((s->flags & SF_REJECT_ALL) && !(c->flags & CMD_REJECT_ALL_OK)) {
        /* After a 5xx greeting (Postfix smtpd_delay_reject = no), RFC 5321
         * 3.1 lets the client only QUIT; Postfix answers the rest so. */
        smtp_reply_cmd(s, "503 5.7.0 Error: access denied for %s[%s]",
                       s->client_name, s->client_ip);
        return;
    }
    if (c->check && !c->check(s))
        return;
    c->proceed(s);
}

/* ------------------------------------------------------------------ */
/* Input                                                               */

/* Take the next complete line into s->line. Returns 1 with a line, 0 when
 * more input is needed, -1 when an over-long line was skipped (the caller
 * replies). */
static int
next_line(struct smtp_session *s, size_t max)
{
    size_t avail = net_conn_in_len(s->conn);
    if (avail == 0)
        return 0;
    if (s->flags & SF_SKIP_LINE) {
        /* Inside an over-long line: drop bytes up to and including its
         * end, never keeping more than one read's worth. */
        long lf = net_conn_find_lf(s->conn, avail);
        if (lf < 0) {
            net_conn_drain(s->conn, avail);
            return 0;
        }
        net_conn_drain(s->conn, (size_t)lf + 1);
        s->flags &= ~SF_SKIP_LINE;
        return -1;
    }
    size_t look = avail < max + 2 ? avail : max + 2;
    long lf = net_conn_find_lf(s->conn, look);
    if (lf < 0) {
        if (avail < max + 2)
            return 0; /* wait for the rest of the line */
        s->flags |= SF_SKIP_LINE;
        return next_line(s, max);
    }
    const char *p = net_conn_pullup(s->conn, (size_t)lf + 1);
    size_t len = (size_t)lf;
    s->line_eol = "\n";
    if (len > 0 && p[len - 1] == '\r') {
        len--;
        s->line_eol = "\r\n";
    }
    if (len > max) {
        net_conn_drain(s->conn, (size_t)lf + 1);
        return -1;
    }
    buf_reset(&s->line, LINE_KEEP);
    if (buf_append(&s->line, p, len) < 0) {
        net_conn_drain(s->conn, (size_t)lf + 1);
        resource_shortage(s);
        return 0;
    }
    net_conn_drain(s->conn, (size_t)lf + 1);
    return 1;
}

static bool
read_proxy(struct smtp_session *s)
{
    size_t avail = net_conn_in_len(s->conn);
    size_t want =
        avail < PROXY_V2_HEADER + 65535 ? avail : PROXY_V2_HEADER + 65535;
    const unsigned char *p =
        (const unsigned char *)net_conn_pullup(s->conn, want);
    struct proxy_info pi;
    enum proxy_result r = p ? proxy_parse(p, want, &pi) : PROXY_INCOMPLETE;
    if (r == PROXY_INCOMPLETE)
        return false;
    if (r == PROXY_INVALID) {
        struct log_kv kv[] = {
            LOG_KVN("header", (const char *)p, want < 64 ? want : 64)};
        slog(s, LOG_LEVEL_WARN, "proxy-invalid", kv, 1);
        session_end(s, OUTCOME_ERROR, "bad PROXY header");
        return false;
    }
    net_conn_drain(s->conn, pi.header_len);
    if (pi.has_addresses) {
        s->client_addr = pi.src;
        ip_format(&pi.src, s->client_ip, sizeof(s->client_ip));
        s->client_port = pi.src_port;
        if (s->rec) {
            store_lock(&s->emu->store);
            str_copy(s->rec->client_ip, sizeof(s->rec->client_ip),
                     s->client_ip);
            s->rec->client_port = s->client_port;
            store_unlock(&s->emu->store);
        }
    }
    char ver[4];
    snprintf(ver, sizeof(ver), "%d", pi.version);
    struct log_kv kv[] = {LOG_KV("version", ver),
                          LOG_KV("source", s->client_ip)};
    slog(s, LOG_LEVEL_INFO, "proxy", kv, 2);
    set_state(s, SMTP_STATE_CMD);
    session_greet(s);
    return true;
}

/* True when the next command must wait --error-delay first. */
static bool
error_delay_due(struct smtp_session *s)
{
    const struct config *cfg = s->emu->cfg;
    return cfg->error_delay > 0 && s->errors >= cfg->soft_error_limit &&
           !(s->flags & SF_ERR_DELAYED) && net_conn_in_len(s->conn) > 0 &&
           ensure_timer(s) == 0;
}

/* Work through buffered input until it runs out or the session waits. */
static void
session_process(struct smtp_session *s)
{
    while (!(s->flags & (SF_DEAD | SF_CLOSE_AFTER_REPLY)) && s->conn &&
           !s->slow_active) {
        bool again = false;
        switch (s->state) {
        case SMTP_STATE_PROXY:
            again = read_proxy(s);
            break;
        case SMTP_STATE_CMD:
        case SMTP_STATE_AUTH: {
            if (net_conn_out_len(s->conn) > OUT_HIGH && ensure_timer(s) == 0) {
                /* Resumed by NET_EV_DRAINED; a client that reads nothing
                 * for the idle timeout is dropped (no reply can reach
                 * it). */
                s->flags |= SF_OUT_FULL;
                net_conn_read_enable(s->conn, false);
                net_timer_start(s->timer, s->emu->cfg->idle_timeout);
                break;
            }
            if (error_delay_due(s)) {
                /* Postfix sleeps before each reply past the soft error
                 * limit; we pause input on a timer instead. */
                s->flags |= SF_ERR_DELAYED;
                s->resume_state = s->state;
                set_state(s, SMTP_STATE_WAIT);
                net_conn_read_enable(s->conn, false);
                net_timer_start(s->timer, s->emu->cfg->error_delay);
                break;
            }
            s->flags &= ~SF_ERR_DELAYED;
            size_t max = s->state == SMTP_STATE_AUTH ? AUTH_LINE_MAX + 2
                                                     : s->emu->cfg->max_line;
            int r = next_line(s, max);
            if (r < 0) {
                s->cur_stage = STAGE_COUNT;
                if (s->state == SMTP_STATE_AUTH) {
                    note_client_line(s, "***", 3);
                    auth_clear(s);
                    set_state(s, SMTP_STATE_CMD);
                    smtp_reply_cmd(s, "500 5.5.6 SASL response limit "
                                      "exceeded");
                } else {
                    static const char note[] = "[command line too long]";
                    transcript(s, TR_NOTE, note, sizeof(note) - 1);
                    slog(s, LOG_LEVEL_INFO, "cmd", NULL, 0);
                    smtp_reply_cmd(s, "500 5.5.2 %s Error: command too long",
                                   s->emu->hostname);
                }
                again = true;
            } else if (r > 0) {
                if (s->state == SMTP_STATE_AUTH)
                    auth_line(s, s->line.data, s->line.len);
                else
                    handle_line(s, s->line.data, s->line.len);
                again = true;
            }
            break;
        }
        case SMTP_STATE_DATA:
            again = read_data(s);
            break;
        case SMTP_STATE_BDAT:
            again = read_bdat(s);
            break;
        case SMTP_STATE_HANG:
            /* Swallow input; only a disconnect or the timer matters,
             * unless the scenario waits for input to abort on. */
            if ((s->flags & SF_ABORT_ON_INPUT) &&
                net_conn_in_len(s->conn) > 0) {
                slog(s, LOG_LEVEL_INFO, "scenario-abort", NULL, 0);
                if (s->flags & SF_ABORT_RST) {
                    reset_now(s, "reset by scenario on input");
                } else {
                    s->flags |= SF_CLOSE_AFTER_REPLY;
                    set_state(s, SMTP_STATE_QUIT);
                }
                break;
            }
            net_conn_drain(s->conn, net_conn_in_len(s->conn));
            break;
        case SMTP_STATE_NEW:
        case SMTP_STATE_TLS_ACCEPT:
        case SMTP_STATE_TLS_PENDING:
        case SMTP_STATE_TLS_HANDSHAKE:
        case SMTP_STATE_WAIT:
        case SMTP_STATE_QUIT:
            break;
        }
        if (!again)
            break;
        if ((s->flags & SF_SHUTDOWN) && s->state == SMTP_STATE_CMD && s->conn &&
            net_conn_in_len(s->conn) == 0) {
            s->flags |= SF_CLOSE_AFTER_REPLY;
            break;
        }
    }
    /* A client that half-closed and whose last command is answered. */
    if ((s->flags & SF_PEER_EOF) && !(s->flags & SF_DEAD) &&
        s->state != SMTP_STATE_WAIT && s->state != SMTP_STATE_TLS_PENDING)
        session_end(s, OUTCOME_DISCONNECTED, "client closed the connection");
}

/* ------------------------------------------------------------------ */
/* Greeting and net events                                             */

static void
connect_decided(struct smtp_session *s, struct decision *d)
{
    if (apply_terminal(s, d))
        return;
    int code = decision_code(d);
    if (code > 0) {
        reply_decision(s, d);
        if (code >= 500 && !(s->flags & SF_CLOSE_AFTER_REPLY))
            s->flags |= SF_REJECT_ALL;
        return;
    }
    const char *banner = s->script ? script_banner(s->script) : NULL;
    smtp_reply(s, "220 %s", banner ? banner : s->emu->banner);
}

static void
session_greet(struct smtp_session *s)
{
    decide(s, STAGE_CONNECT, connect_decided);
}

static void
on_net(struct net_conn *c, enum net_event ev, void *arg)
{
    (void)c;
    struct smtp_session *s = arg;
    s->busy++;
    switch (ev) {
    case NET_EV_READ:
        if (s->state == SMTP_STATE_QUIT || (s->flags & SF_CLOSE_AFTER_REPLY))
            net_conn_drain(s->conn, net_conn_in_len(s->conn));
        else
            session_process(s);
        break;
    case NET_EV_DRAINED:
        if (s->flags & SF_OUT_FULL) {
            s->flags &= ~SF_OUT_FULL;
            net_timer_stop(s->timer);
            net_conn_read_enable(s->conn, true);
            session_process(s);
        } else if (s->flags & SF_RESET_AFTER_REPLY) {
            reset_now(s, "reset by scenario");
        } else if (s->flags & SF_CLOSE_AFTER_REPLY) {
            if (s->state != SMTP_STATE_HANG && !s->slow_active)
                smtp_session_free(s, "closed");
        } else if (s->state == SMTP_STATE_TLS_PENDING) {
            tls_start(s);
        }
        break;
    case NET_EV_TLS_READY:
        tls_ready(s);
        if (!(s->flags & (SF_DEAD | SF_CLOSE_AFTER_REPLY)))
            session_process(s);
        break;
    case NET_EV_TIMEOUT:
        if (s->state == SMTP_STATE_TLS_HANDSHAKE ||
            s->state == SMTP_STATE_TLS_ACCEPT) {
            s->outcome = OUTCOME_TIMED_OUT;
            smtp_session_free(s, "TLS handshake timeout");
            break;
        }
        s->cur_stage = STAGE_COUNT;
        slog(s, LOG_LEVEL_INFO, "timeout", NULL, 0);
        smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->emu->hostname);
        s->outcome = OUTCOME_TIMED_OUT;
        s->flags |= SF_CLOSE_AFTER_REPLY;
        break;
    case NET_EV_EOF:
        s->flags |= SF_PEER_EOF;
        if (s->state == SMTP_STATE_TLS_HANDSHAKE ||
            s->state == SMTP_STATE_TLS_ACCEPT) {
            char err[256];
            net_conn_tls_error(s->conn, err, sizeof(err));
            struct log_kv kv[] = {LOG_KV("error", err)};
            slog(s, LOG_LEVEL_INFO, "tls-failed", kv, 1);
            metrics_inc(&s->emu->metrics.tls_failures);
            s->outcome = OUTCOME_ERROR;
            smtp_session_free(s, "TLS handshake failed");
            break;
        }
        if (s->state == SMTP_STATE_HANG) {
            smtp_session_free(s, "client left a hung session");
            break;
        }
        if (s->state == SMTP_STATE_WAIT || s->state == SMTP_STATE_DATA ||
            s->state == SMTP_STATE_BDAT) {
            /* Let a pending delay finish; the client may still read.
             * A message cut off by EOF is not stored. */
            if (s->state != SMTP_STATE_WAIT)
                smtp_session_free(s, "client closed the connection");
            break;
        }
        session_process(s);
        if (!(s->flags & SF_DEAD))
            session_end(s, OUTCOME_DISCONNECTED,
                        "client closed the connection");
        break;
    case NET_EV_ERROR:
        if (s->state == SMTP_STATE_TLS_HANDSHAKE ||
            s->state == SMTP_STATE_TLS_ACCEPT) {
            char err[256];
            net_conn_tls_error(s->conn, err, sizeof(err));
            struct log_kv kv[] = {LOG_KV("error", err)};
            slog(s, LOG_LEVEL_INFO, "tls-failed", kv, 1);
            metrics_inc(&s->emu->metrics.tls_failures);
            s->outcome = OUTCOME_ERROR;
            smtp_session_free(s, "TLS handshake failed");
            break;
        }
        if (s->state == SMTP_STATE_HANG)
            s->outcome = OUTCOME_HUNG;
        else if (s->outcome == OUTCOME_ACTIVE)
            s->outcome = OUTCOME_DISCONNECTED;
        smtp_session_free(s, "connection error");
        break;
    }
    session_leave(s);
}

void
smtp_session_accept(struct worker *w, const struct listener_spec *l, int fd,
                    const struct sockaddr *sa, socklen_t salen)
{
    (void)salen;
    struct emu *e = w->emu;
    struct smtp_session *s = emu_calloc(1, sizeof(*s));
    if (s == NULL) {
        static const char msg[] = "421 4.3.0 Error: resource shortage\r\n";
        (void)!write(fd, msg, sizeof(msg) - 1);
        close(fd);
        return;
    }
    s->w = w;
    s->emu = e;
    s->listener = l;
    s->id = atomic_fetch_add(&e->next_session_id, 1) + 1;
    snprintf(s->idstr, sizeof(s->idstr), "%llu", (unsigned long long)s->id);
    net_sockaddr_format(sa, s->peer_ip, sizeof(s->peer_ip), &s->peer_port);
    str_copy(s->client_ip, sizeof(s->client_ip), s->peer_ip);
    s->client_port = s->peer_port;
    ip_parse(s->client_ip, strlen(s->client_ip), &s->client_addr);
    str_copy(s->client_name, sizeof(s->client_name), "unknown");
    s->line_eol = "\r\n";
    s->cur_stage = STAGE_CONNECT;
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    w->n_sessions++;
    unsigned active = atomic_fetch_add(&e->active_sessions, 1) + 1;
    metrics_inc(&e->metrics.sessions_total);
    s->start = net_now(w->net);

    bool implicit_tls = l->cfg->kind == LISTENER_SMTPS;
    bool over = active > e->cfg->max_connections;
    /* The scenario comes first: with implicit TLS it picks the TLS set-up
     * (on_tls) before the handshake starts. */
    if (!over)
        s->script =
            script_session_new(w->script, s, (size_t)(l - e->listeners));
    struct decision tls_d;
    decision_init(&tls_d);
    struct net_tls *ctx = implicit_tls ? tls_choose(s, &tls_d) : NULL;
    s->conn = net_conn_new(w->net, fd, ctx, on_net, s);
    if (s->conn == NULL) {
        decision_cleanup(&tls_d);
        s->outcome = OUTCOME_ERROR;
        smtp_session_free(s, "out of memory");
        return;
    }
    net_conn_set_timeout(s->conn, e->cfg->idle_timeout);
    s->rec = store_session_new(&e->store, s->id);
    if (s->rec) {
        store_lock(&e->store);
        str_copy(s->rec->client_ip, sizeof(s->rec->client_ip), s->client_ip);
        s->rec->client_port = s->client_port;
        str_copy(s->rec->peer_ip, sizeof(s->rec->peer_ip), s->peer_ip);
        s->rec->peer_port = s->peer_port;
        str_copy(s->rec->listener, sizeof(s->rec->listener), l->name);
        s->rec->start = s->start;
        store_unlock(&e->store);
    }
    if (log_on(s, LOG_LEVEL_INFO)) {
        char port[8];
        snprintf(port, sizeof(port), "%u", s->peer_port);
        struct log_kv kv[] = {LOG_KV("port", port),
                              LOG_KV("listener", l->name)};
        slog(s, LOG_LEVEL_INFO, "connect", kv, 2);
    }

    s->busy++;
    if (over) {
        /* Postfix's wording for its per-client connection limit. */
        metrics_inc(&e->metrics.connections_refused);
        s->cur_stage = STAGE_CONNECT;
        s->last_reject_code = 421;
        s->last_reject_stage = STAGE_CONNECT;
        smtp_reply(s, "421 4.7.0 %s Error: too many connections from %s",
                   e->hostname, s->client_ip);
        s->flags |= SF_CLOSE_AFTER_REPLY;
        session_leave(s);
        return;
    }
    if (s->rec && s->script)
        store_session_set(&e->store, &s->rec->scenario,
                          script_session_scenario(s->script));
    if (apply_terminal(s, &tls_d)) {
        decision_cleanup(&tls_d);
        session_leave(s);
        return;
    }
    decision_cleanup(&tls_d);
    if (l->cfg->proxy_protocol) {
        set_state(s, SMTP_STATE_PROXY);
    } else if (implicit_tls) {
        set_state(s, SMTP_STATE_TLS_ACCEPT);
    } else {
        set_state(s, SMTP_STATE_CMD);
        session_greet(s);
    }
    session_leave(s);
}

struct smtp_session *
smtp_session_next(struct smtp_session *s)
{
    return s->next;
}

void
smtp_session_shutdown(struct smtp_session *s)
{
    s->busy++;
    s->flags |= SF_SHUTDOWN;
    if (s->state == SMTP_STATE_CMD && s->conn &&
        net_conn_in_len(s->conn) == 0 && !(s->flags & SF_DEAD)) {
        /* Idle between commands: nothing in flight to finish. */
        s->flags |= SF_CLOSE_AFTER_REPLY;
    }
    session_leave(s);
}

void
smtp_session_abort(struct smtp_session *s, const char *reason)
{
    s->busy++;
    if (s->outcome == OUTCOME_ACTIVE)
        s->outcome = OUTCOME_DISCONNECTED;
    s->flags |= SF_DEAD;
    session_leave(s);
    (void)reason;
}

/* ------------------------------------------------------------------ */
/* What the scenario bridge may see                                    */

void
smtp_session_view(const struct smtp_session *s, struct session_view *v)
{
    memset(v, 0, sizeof(*v));
    v->id = s->id;
    v->client_ip = s->client_ip;
    v->client_port = s->client_port;
    v->client_name = s->client_name;
    v->peer_ip = s->peer_ip;
    v->peer_port = s->peer_port;
    v->listener = s->listener->name;
    v->helo = s->helo;
    v->esmtp = (s->flags & SF_ESMTP) != 0;
    v->tls = s->tls;
    v->auth_mech =
        s->auth_mech != SASL_MECH_UNKNOWN ? sasl_mech_name(s->auth_mech) : NULL;
    v->auth_user = s->auth_user_final;
    if (s->state == SMTP_STATE_CMD && s->cur_stage == STAGE_AUTH) {
        v->auth_user = s->auth_user.data ? s->auth_user.data : "";
        v->auth_secret = s->auth_secret.data ? s->auth_secret.data : "";
        v->auth_secret_len = s->auth_secret.len;
        v->auth_step = s->auth_step;
    }
    v->authenticated = (s->flags & SF_AUTHED) != 0;
    v->mail_from = s->mail_from;
    v->mail_params = s->mail_params.data ? s->mail_params.data : "";
    v->rcpts = (const char *const *)s->rcpts;
    v->n_rcpts = s->n_rcpts;
    v->n_rcpts_refused = s->n_rcpt_refused;
    v->env = &s->env;
    v->cmd = &s->cmd;
    v->msg = s->msg.data ? s->msg.data : "";
    v->msg_len = s->msg.len;
    v->bdat = (s->flags & SF_BDAT) != 0;
    v->start = s->start;
    v->messages = s->messages;
    v->errors = s->errors;
}

double
smtp_session_now(const struct smtp_session *s)
{
    return net_now(s->w->net);
}

struct rng *
smtp_session_rng(struct smtp_session *s)
{
    return &s->w->rng;
}

void
smtp_session_log(struct smtp_session *s, enum log_level lvl, const char *event,
                 const struct log_kv *kv, size_t n)
{
    slog(s, lvl, event, kv, n);
}
