/*
 * kv: a chained hash table under one mutex. Expired entries are removed
 * when touched and by an occasional sweep on insert, so a store that only
 * grows with keys nobody reads again still stays within its cap.
 */
#include "kv.h"
#include "util.h"

#include <string.h>

struct kv_entry {
    struct kv_entry *next;
    uint64_t hash;
    char *key;
    size_t klen;
    struct kv_value v;
};

static uint64_t
hash_key(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int
kv_init(struct kv *kv, size_t max_entries)
{
    memset(kv, 0, sizeof(*kv));
    kv->n_buckets = 256;
    kv->buckets = emu_calloc(kv->n_buckets, sizeof(*kv->buckets));
    if (kv->buckets == NULL)
        return -1;
    kv->max_entries = max_entries;
    if (pthread_mutex_init(&kv->mu, NULL) != 0) {
        emu_free(kv->buckets);
        return -1;
    }
    return 0;
}

static void
entry_free(struct kv_entry *e)
{
    emu_free(e->key);
    emu_free(e->v.str);
    emu_free(e);
}

static void
clear_locked(struct kv *kv)
{
    for (size_t i = 0; i < kv->n_buckets; i++) {
        struct kv_entry *e = kv->buckets[i];
        while (e) {
            struct kv_entry *next = e->next;
            entry_free(e);
            e = next;
        }
        kv->buckets[i] = NULL;
    }
    kv->n_entries = 0;
    kv->bytes = 0;
}

void
kv_cleanup(struct kv *kv)
{
    if (kv->buckets == NULL)
        return;
    clear_locked(kv);
    emu_free(kv->buckets);
    pthread_mutex_destroy(&kv->mu);
    memset(kv, 0, sizeof(*kv));
}

void
kv_clear(struct kv *kv)
{
    pthread_mutex_lock(&kv->mu);
    clear_locked(kv);
    pthread_mutex_unlock(&kv->mu);
}

static bool
expired(const struct kv_entry *e, double now)
{
    return e->v.expires > 0 && now >= e->v.expires;
}

/* Find the entry (removing it if expired); *slot gets the link to it. */
static struct kv_entry *
find(struct kv *kv, const char *key, size_t klen, uint64_t h, double now,
     struct kv_entry ***slot)
{
    struct kv_entry **pp = &kv->buckets[h % kv->n_buckets];
    while (*pp) {
        struct kv_entry *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            if (expired(e, now)) {
                *pp = e->next;
                kv->n_entries--;
                entry_free(e);
                break;
            }
            *slot = pp;
            return e;
        }
        pp = &e->next;
    }
    *slot = pp;
    return NULL;
}

static void
sweep(struct kv *kv, double now)
{
    for (size_t i = 0; i < kv->n_buckets; i++) {
        struct kv_entry **pp = &kv->buckets[i];
        while (*pp) {
            struct kv_entry *e = *pp;
            if (expired(e, now)) {
                *pp = e->next;
                kv->n_entries--;
                entry_free(e);
            } else {
                pp = &e->next;
            }
        }
    }
}

static void
grow(struct kv *kv)
{
    size_t n = kv->n_buckets * 2;
    struct kv_entry **nb = emu_calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < kv->n_buckets; i++) {
        struct kv_entry *e = kv->buckets[i];
        while (e) {
            struct kv_entry *next = e->next;
            e->next = nb[e->hash % n];
            nb[e->hash % n] = e;
            e = next;
        }
    }
    emu_free(kv->buckets);
    kv->buckets = nb;
    kv->n_buckets = n;
}

/* Find or create; NULL when full or out of memory. */
static struct kv_entry *
upsert(struct kv *kv, const char *key, size_t klen, double now, bool *created)
{
    uint64_t h = hash_key(key, klen);
    struct kv_entry **slot;
    struct kv_entry *e = find(kv, key, klen, h, now, &slot);
    *created = false;
    if (e)
        return e;
    if (kv->n_entries >= kv->max_entries) {
        sweep(kv, now);
        if (kv->n_entries >= kv->max_entries)
            return NULL;
    }
    e = emu_calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->key = emu_strndup(key, klen);
    if (e->key == NULL) {
        emu_free(e);
        return NULL;
    }
    e->klen = klen;
    e->hash = h;
    e->next = kv->buckets[h % kv->n_buckets];
    kv->buckets[h % kv->n_buckets] = e;
    kv->n_entries++;
    *created = true;
    if (kv->n_entries > kv->n_buckets * 2)
        grow(kv);
    return e;
}

int
kv_get(struct kv *kv, const char *key, size_t klen, double now,
       struct kv_value *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&kv->mu);
    struct kv_entry **slot;
    struct kv_entry *e = find(kv, key, klen, hash_key(key, klen), now, &slot);
    int rc = 0;
    if (e) {
        *out = e->v;
        out->str = NULL;
        if (e->v.type == KV_STRING) {
            out->str = emu_strndup(e->v.str, e->v.len);
            if (out->str == NULL) {
                out->type = KV_NONE;
                rc = -1;
            }
        }
    }
    pthread_mutex_unlock(&kv->mu);
    return rc;
}

static double
expiry(double ttl, double now)
{
    return ttl > 0 ? now + ttl : 0;
}

int
kv_set_string(struct kv *kv, const char *key, size_t klen, const char *val,
              size_t vlen, double ttl, double now)
{
    char *copy = emu_strndup(val, vlen);
    if (copy == NULL)
        return -1;
    pthread_mutex_lock(&kv->mu);
    bool created;
    struct kv_entry *e = upsert(kv, key, klen, now, &created);
    if (e == NULL) {
        pthread_mutex_unlock(&kv->mu);
        emu_free(copy);
        return -1;
    }
    emu_free(e->v.str);
    e->v.type = KV_STRING;
    e->v.str = copy;
    e->v.len = vlen;
    e->v.num = 0;
    e->v.expires = expiry(ttl, now);
    pthread_mutex_unlock(&kv->mu);
    return 0;
}

int
kv_set_number(struct kv *kv, const char *key, size_t klen, double val,
              double ttl, double now)
{
    pthread_mutex_lock(&kv->mu);
    bool created;
    struct kv_entry *e = upsert(kv, key, klen, now, &created);
    if (e == NULL) {
        pthread_mutex_unlock(&kv->mu);
        return -1;
    }
    emu_free(e->v.str);
    e->v.str = NULL;
    e->v.type = KV_NUMBER;
    e->v.num = val;
    e->v.expires = expiry(ttl, now);
    pthread_mutex_unlock(&kv->mu);
    return 0;
}

int
kv_incr(struct kv *kv, const char *key, size_t klen, double by, double ttl,
        bool reset_ttl, double now, double *out)
{
    pthread_mutex_lock(&kv->mu);
    bool created;
    struct kv_entry *e = upsert(kv, key, klen, now, &created);
    if (e == NULL || e->v.type == KV_STRING) {
        pthread_mutex_unlock(&kv->mu);
        return -1;
    }
    if (created) {
        e->v.type = KV_NUMBER;
        e->v.num = 0;
    }
    e->v.num += by;
    if (created || reset_ttl)
        e->v.expires = expiry(ttl, now);
    *out = e->v.num;
    pthread_mutex_unlock(&kv->mu);
    return 0;
}

bool
kv_del(struct kv *kv, const char *key, size_t klen)
{
    pthread_mutex_lock(&kv->mu);
    struct kv_entry **slot;
    struct kv_entry *e = find(kv, key, klen, hash_key(key, klen), 0, &slot);
    if (e) {
        *slot = e->next;
        kv->n_entries--;
        entry_free(e);
    }
    pthread_mutex_unlock(&kv->mu);
    return e != NULL;
}

void
kv_each(struct kv *kv, double now, kv_each_fn *fn, void *arg)
{
    pthread_mutex_lock(&kv->mu);
    for (size_t i = 0; i < kv->n_buckets; i++)
        for (struct kv_entry *e = kv->buckets[i]; e; e = e->next)
            if (!expired(e, now))
                fn(e->key, e->klen, &e->v, arg);
    pthread_mutex_unlock(&kv->mu);
}
