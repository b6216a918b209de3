/*
 * kv: the scenario state store (emu.state): a thread-safe, capped map from
 * string keys to string or number values with an expiry on the scenario
 * clock. Pure: the caller passes the current time, so tests (and the clock
 * offset of issue 4) decide what "now" is. Shared by every worker and
 * scenario; keys are namespaced by the caller ("greylisting/...").
 */
#ifndef EMU_KV_H
#define EMU_KV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kv_type { KV_NONE, KV_STRING, KV_NUMBER };

struct kv_value {
    enum kv_type type;
    double num;
    char *str; /* owned by the caller after kv_get (emu_free) */
    size_t len;
    double expires; /* 0: never */
};

struct kv_entry;

struct kv {
    pthread_mutex_t mu;
    struct kv_entry **buckets;
    size_t n_buckets;
    size_t n_entries;
    size_t max_entries;
    uint64_t bytes;
};

int kv_init(struct kv *kv, size_t max_entries);
void kv_cleanup(struct kv *kv);

/* Copy out the live value of `key` at time `now`; KV_NONE when absent or
 * expired. Returns -1 only when memory runs out. */
int kv_get(struct kv *kv, const char *key, size_t klen, double now,
           struct kv_value *out);
/* Set; `ttl` <= 0 means no expiry. -1 when memory runs out or the store is
 * full (max_entries live entries). */
int kv_set_string(struct kv *kv, const char *key, size_t klen, const char *val,
                  size_t vlen, double ttl, double now);
int kv_set_number(struct kv *kv, const char *key, size_t klen, double val,
                  double ttl, double now);
/* Add `by` to a number (absent or expired counts as 0). The expiry is set
 * when the entry is created, or always when `reset_ttl`. Returns -1 when the
 * value is a string or memory runs out; the new value goes to *out. */
int kv_incr(struct kv *kv, const char *key, size_t klen, double by, double ttl,
            bool reset_ttl, double now, double *out);
bool kv_del(struct kv *kv, const char *key, size_t klen);
void kv_clear(struct kv *kv);

/* Call `fn` for each live entry under the lock (do not call kv from it). */
typedef void kv_each_fn(const char *key, size_t klen, const struct kv_value *v,
                        void *arg);
void kv_each(struct kv *kv, double now, kv_each_fn *fn, void *arg);

#endif
