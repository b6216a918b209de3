/*
 * log: formatting and buffered, locked output of log lines. The first member
 * of struct log is the public level so log_enabled() stays an inline compare
 * on the hot path. Time stamps are UTC with milliseconds; the formatted
 * second is cached because most lines in a busy second share it. Lines are
 * formatted straight into one output buffer that is written with write(2)
 * when it fills, on log_flush() (a timer) and at once for warnings and
 * errors: no stdio, no per-line copy.
 */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest value logged as is; longer client input is cut with "...". */
#define LOG_VALUE_MAX 1024
/* Output is written once this much is buffered: a page, as stdio did
 * before, so lines show up in the file as soon as they used to (tests and
 * users tail the log). At the default level that is one write(2) per five
 * or so messages; a bigger buffer would write less often but hold lines
 * back until the 100 ms flush timer. */
#define LOG_BUF_FLUSH 4096

struct log {
    struct log_public pub; /* must stay first */
    enum log_format fmt;
    FILE *out;
    int fd;
    bool own;
    pthread_mutex_t mu;
    time_t cached_sec;
    char cached[32]; /* "2026-11-25T17:02:12" */
    size_t cached_len;
    struct buf buf; /* formatted lines not yet written, under the lock */
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
    lg->fd = fileno(lg->out);
    pthread_mutex_init(&lg->mu, NULL);
    lg->cached_sec = -1;
    return lg;
}

/* Write out what is buffered (lock held). A failing log must not stop the
 * server: what cannot be written is dropped. */
static void
write_out(struct log *lg)
{
    if (lg->buf.len == 0)
        return;
    if (lg->out == stderr)
        fflush(stderr); /* what others printed there comes first */
    size_t off = 0;
    while (off < lg->buf.len) {
        ssize_t n = write(lg->fd, lg->buf.data + off, lg->buf.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    buf_reset(&lg->buf, 4 * LOG_BUF_FLUSH);
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
    buf_cleanup(&lg->buf);
    emu_free(lg);
}

/* Append without the growth check: the caller reserved room. */
static inline void
put(struct buf *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void
put_char(struct buf *b, char c)
{
    b->data[b->len++] = c;
}

static void
stamp(struct log *lg, struct buf *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != lg->cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        lg->cached_len =
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
    if (buf_reserve(b, lg->cached_len + 5) < 0)
        return;
    put(b, lg->cached, lg->cached_len);
    put(b, ms, 5);
}

/* How a byte of a text-format value is written: as is (0), as is but the
 * value needs quotes (1: space, '='), or only through str_escape (2). */
// clang-format off
static const unsigned char value_class[256] = {
    /* 0x00-0x1f: control bytes */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* ' ' ! " # $ % & ' ( ) * + , - . / */
    1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0-9 : ; < = > ? */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
    /* @ A-O */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* P-Z [ \ ] ^ _ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    /* ` a-o */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* p-z { | } ~ DEL */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    /* 0x80-0xff: UTF-8 or invalid, str_escape decides */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};
// clang-format on

/* One text-format value: bare when it is plain, else quoted; escaped (and
 * cut at LOG_VALUE_MAX) only when a byte needs it. A value that needs
 * quotes for a space or '=' alone is copied as is. */
/* Bytes of `x` that are zero, as 0x80 bits (exact as to whether any is). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HAS_ZERO(x) (((x)-ONES) & ~(x)&HIGHS)

/* value_class over a whole value, eight bytes at a time: 2 when a byte is a
 * control byte, '"', '\\' or >= 0x7f; else 1 when one is ' ' or '='. */
static unsigned
classify(const char *v, size_t len)
{
    unsigned cls = len == 0 ? 1 : 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, v + i, 8);
        /* < 0x20: x - 0x20 borrows; >= 0x7f: x + 1 reaches the high bit
         * (or it was set already). */
        uint64_t bad = ((x - 0x20 * ONES) & ~x & HIGHS) |
                       ((((x & ~HIGHS) + ONES) | x) & HIGHS) |
                       HAS_ZERO(x ^ ('"' * ONES)) | HAS_ZERO(x ^ ('\\' * ONES));
        if (bad)
            return 2;
        if (HAS_ZERO(x ^ (' ' * ONES)) | HAS_ZERO(x ^ ('=' * ONES)))
            cls = 1;
    }
    for (; i < len && cls < 2; i++)
        cls |= value_class[(unsigned char)v[i]];
    return cls;
}

static void
put_value(struct buf *b, const char *v, size_t len)
{
    unsigned cls = classify(v, len);
    if (cls == 0) {
        if (buf_reserve(b, len) == 0)
            put(b, v, len);
        return;
    }
    if (cls == 1 && len <= LOG_VALUE_MAX) {
        if (buf_reserve(b, len + 2) == 0) {
            put_char(b, '"');
            put(b, v, len);
            put_char(b, '"');
        }
        return;
    }
    buf_append_char(b, '"');
    str_escape(b, v, len, LOG_VALUE_MAX);
    buf_append_char(b, '"');
}

/* The pairs as they follow the event: " key=value" (text) or
 * ",\"key\":\"value\"" (JSON). */
static void
put_pairs(const struct log *lg, struct buf *b, const struct log_kv *kv,
          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = kv[i].val ? kv[i].val : "";
        size_t len = kv[i].len == LOG_STRLEN ? strlen(v) : kv[i].len;
        size_t kl = strlen(kv[i].key);
        if (lg->fmt == LOG_FORMAT_JSON) {
            buf_append_str(b, ",\"");
            buf_append(b, kv[i].key, kl);
            buf_append_str(b, "\":\"");
            if (kv[i].val)
                str_escape(b, v, len, LOG_VALUE_MAX);
            buf_append_char(b, '"');
            continue;
        }
        if (buf_reserve(b, kl + 2) < 0)
            return;
        put_char(b, ' ');
        put(b, kv[i].key, kl);
        put_char(b, '=');
        put_value(b, v, len);
    }
}

/* Format one line at the end of `b`: the stamp, level and event, the
 * preformatted pairs `pre`, then `kv`. On allocation failure the line is
 * dropped whole, never written in part. */
static void
format_line(struct log *lg, struct buf *b, enum log_level lvl,
            const char *event, const char *pre, size_t pre_len,
            const struct log_kv *kv, size_t n)
{
    size_t start = b->len;
    if (lg->fmt == LOG_FORMAT_JSON) {
        buf_append_str(b, "{\"time\":\"");
        stamp(lg, b);
        buf_printf(b, "\",\"level\":\"%s\",\"event\":\"", log_level_name(lvl));
        str_escape(b, event, strlen(event), LOG_VALUE_MAX);
        buf_append_char(b, '"');
        buf_append(b, pre, pre_len);
        put_pairs(lg, b, kv, n);
        buf_append_str(b, "}\n");
    } else {
        stamp(lg, b);
        const char *lname = log_level_name(lvl);
        size_t ll = strlen(lname), el = strlen(event);
        if (buf_reserve(b, ll + el + 8 + pre_len) == 0) {
            put_char(b, ' ');
            put(b, lname, ll);
            put(b, " event=", 7);
            put(b, event, el);
            if (pre_len)
                put(b, pre, pre_len);
        }
        put_pairs(lg, b, kv, n);
        buf_append_char(b, '\n');
    }
    /* Every append above either succeeded or left the buffer as it was:
     * a line without its newline is one that ran out of memory. */
    if (b->len == start || b->data[b->len - 1] != '\n') {
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
}

int
log_format_pairs(const struct log *lg, struct buf *out, const struct log_kv *kv,
                 size_t n)
{
    size_t start = out->len;
    put_pairs(lg, out, kv, n);
    if (buf_reserve(out, 0) < 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

void
log_emit_pre(struct log *lg, enum log_level lvl, const char *event,
             const char *pre, size_t pre_len, const struct log_kv *kv, size_t n)
{
    if (!log_enabled(lg, lvl))
        return;
    pthread_mutex_lock(&lg->mu);
    format_line(lg, &lg->buf, lvl, event, pre, pre_len, kv, n);
    /* Errors must not wait for the flush timer: a crash may follow. */
    if (lvl <= LOG_LEVEL_WARN || lg->buf.len >= LOG_BUF_FLUSH)
        write_out(lg);
    pthread_mutex_unlock(&lg->mu);
}

void
log_emit(struct log *lg, enum log_level lvl, const char *event,
         const struct log_kv *kv, size_t n)
{
    log_emit_pre(lg, lvl, event, "", 0, kv, n);
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
    write_out(lg);
    pthread_mutex_unlock(&lg->mu);
}
