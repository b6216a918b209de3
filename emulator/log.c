/*
 * log: formatting and buffered, locked output of log lines. The first member
 * of struct log is the public level so log_enabled() stays an inline compare
 * on the hot path. Time stamps are UTC with milliseconds; the formatted
 * second is cached because most lines in a busy second share it.
 */
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest value logged as is; longer client input is cut with "...". */
#define LOG_VALUE_MAX 1024

struct log {
    struct log_public pub; /* must stay first */
    enum log_format fmt;
    FILE *out;
    bool own;
    pthread_mutex_t mu;
    time_t cached_sec;
    char cached[32]; /* "2026-11-25T17:02:12" */
    struct buf line; /* reused under the lock */
};

struct log *
log_new(const char *path, enum log_format fmt, enum log_level level)
{
    struct log *lg = emu_calloc(1, sizeof(*lg));
    if (lg == NULL)
        return NULL;
    lg->pub.level = level;
    lg->fmt = fmt;
    if (path) {
        lg->out = fopen(path, "a");
        if (lg->out == NULL) {
            emu_free(lg);
            return NULL;
        }
        lg->own = true;
    } else {
        lg->out = stderr;
    }
    /* Full buffering; log_flush() runs on a timer and at exit. */
    setvbuf(lg->out, NULL, _IOFBF, 1 << 16);
    pthread_mutex_init(&lg->mu, NULL);
    lg->cached_sec = -1;
    return lg;
}

void
log_free(struct log *lg)
{
    if (lg == NULL)
        return;
    log_flush(lg);
    if (lg->own)
        fclose(lg->out);
    pthread_mutex_destroy(&lg->mu);
    buf_cleanup(&lg->line);
    emu_free(lg);
}

static void
stamp(struct log *lg, struct buf *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != lg->cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(lg->cached, sizeof(lg->cached), "%Y-%m-%dT%H:%M:%S", &tm);
        lg->cached_sec = ts.tv_sec;
    }
    /* "YYYY-MM-DDTHH:MM:SS" + ".mmmZ" without printf on the hot path. */
    char ms[6];
    long m = ts.tv_nsec / 1000000;
    ms[0] = '.';
    ms[1] = (char)('0' + m / 100);
    ms[2] = (char)('0' + m / 10 % 10);
    ms[3] = (char)('0' + m % 10);
    ms[4] = 'Z';
    buf_append_str(b, lg->cached);
    buf_append(b, ms, 5);
}

static bool
needs_quotes(const char *v, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

static void
format_line(struct log *lg, enum log_level lvl, const char *event,
            const struct log_kv *kv, size_t n)
{
    struct buf *b = &lg->line;
    b->len = 0;
    if (lg->fmt == LOG_FORMAT_JSON) {
        buf_append_str(b, "{\"time\":\"");
        stamp(lg, b);
        buf_printf(b, "\",\"level\":\"%s\",\"event\":\"", log_level_name(lvl));
        str_escape(b, event, strlen(event), LOG_VALUE_MAX);
        buf_append_char(b, '"');
        for (size_t i = 0; i < n; i++) {
            size_t len = kv[i].len == LOG_STRLEN
                             ? (kv[i].val ? strlen(kv[i].val) : 0)
                             : kv[i].len;
            buf_append_str(b, ",\"");
            buf_append_str(b, kv[i].key);
            buf_append_str(b, "\":\"");
            if (kv[i].val)
                str_escape(b, kv[i].val, len, LOG_VALUE_MAX);
            buf_append_char(b, '"');
        }
        buf_append_str(b, "}\n");
        return;
    }
    stamp(lg, b);
    buf_append_char(b, ' ');
    buf_append_str(b, log_level_name(lvl));
    buf_append_str(b, " event=");
    buf_append_str(b, event);
    for (size_t i = 0; i < n; i++) {
        const char *v = kv[i].val ? kv[i].val : "";
        size_t len = kv[i].len == LOG_STRLEN ? strlen(v) : kv[i].len;
        buf_append_char(b, ' ');
        buf_append_str(b, kv[i].key);
        buf_append_char(b, '=');
        if (needs_quotes(v, len)) {
            buf_append_char(b, '"');
            str_escape(b, v, len, LOG_VALUE_MAX);
            buf_append_char(b, '"');
        } else {
            buf_append(b, v, len);
        }
    }
    buf_append_char(b, '\n');
}

void
log_emit(struct log *lg, enum log_level lvl, const char *event,
         const struct log_kv *kv, size_t n)
{
    if (!log_enabled(lg, lvl))
        return;
    pthread_mutex_lock(&lg->mu);
    format_line(lg, lvl, event, kv, n);
    if (lg->line.data)
        fwrite(lg->line.data, 1, lg->line.len, lg->out);
    /* Errors must not wait for the flush timer: a crash may follow. */
    if (lvl <= LOG_LEVEL_WARN)
        fflush(lg->out);
    pthread_mutex_unlock(&lg->mu);
}

void
log_msg(struct log *lg, enum log_level lvl, const char *event, const char *fmt,
        ...)
{
    char msg[1024];
    va_list ap;
    if (!log_enabled(lg, lvl))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct log_kv kv[] = {LOG_KV("msg", msg)};
    log_emit(lg, lvl, event, kv, 1);
}

void
log_flush(struct log *lg)
{
    if (lg == NULL)
        return;
    pthread_mutex_lock(&lg->mu);
    fflush(lg->out);
    pthread_mutex_unlock(&lg->mu);
}
