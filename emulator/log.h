/*
 * log: leveled key=value logging to stderr or a file, as text
 * ("2026-11-25T17:02:12.123Z info event=cmd session=1A client=... line=...")
 * or as JSON lines. Values are escaped (str_escape) and length-capped, so
 * client bytes can be logged safely. Thread-safe: lines from several workers
 * never interleave. Output is buffered and flushed by log_flush(), which the
 * event loop calls on a short timer, and at exit.
 */
#ifndef EMU_LOG_H
#define EMU_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "util.h"

struct log;

struct log_kv {
    const char *key;
    const char *val; /* may hold any bytes when len is given */
    size_t len;      /* LOG_STRLEN: use strlen(val) */
};

#define LOG_STRLEN ((size_t)-1)
#define LOG_KV(k, v)                                                           \
    (struct log_kv) { (k), (v), LOG_STRLEN }
#define LOG_KVN(k, v, n)                                                       \
    (struct log_kv) { (k), (v), (n) }

/* Open: `path` NULL means stderr. Returns owned log (free with log_free)
 * or NULL with errno set. */
struct log *log_new(const char *path, enum log_format fmt,
                    enum log_level level);
void log_free(struct log *lg);

static inline bool log_enabled(const struct log *lg, enum log_level lvl);

/* Write one line: "event" first, then the pairs in order. */
void log_emit(struct log *lg, enum log_level lvl, const char *event,
              const struct log_kv *kv, size_t n);
/* The same with pairs formatted beforehand by log_format_pairs (`pre`,
 * borrowed) written before `kv`: for callers whose lines all start with
 * the same pairs (a session's id and client). */
void log_emit_pre(struct log *lg, enum log_level lvl, const char *event,
                  const char *pre, size_t pre_len, const struct log_kv *kv,
                  size_t n);
/* Append the pairs, formatted as a line of `lg` has them after its event
 * (the format depends on the log's). Returns 0, or -1 when memory runs
 * out (out as it was). */
int log_format_pairs(const struct log *lg, struct buf *out,
                     const struct log_kv *kv, size_t n);
/* printf-style single message: event=<event> msg="...". */
void log_msg(struct log *lg, enum log_level lvl, const char *event,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_flush(struct log *lg);

/* Internal layout exposed for the inline level check only. */
struct log_public {
    enum log_level level;
};

static inline bool
log_enabled(const struct log *lg, enum log_level lvl)
{
    return lg != NULL && lvl <= ((const struct log_public *)lg)->level;
}

#endif
