/*
 * state: where emu.state lives. The in-process kv store (the default), or
 * Redis (--state redis://...) so that replicas behave as one server. Each
 * worker has one struct state. Expiry always follows the scenario clock:
 * the expiry time is kept with the value and a key past it is absent;
 * Redis's own TTL is only a safety net. The scenario clock's offset is kept
 * in Redis too, so moving it on one replica moves it for all.
 */
#ifndef EMU_STATE_H
#define EMU_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "kv.h"

struct emu;
struct net;
struct state;

enum state_op { STATE_GET, STATE_SET, STATE_INCR, STATE_DEL };

struct state_result {
    const char *err;  /* NULL on success */
    bool unavailable; /* err: the store could not be reached in time */
    enum kv_type type;
    double num;
    const char *str; /* borrowed during the callback */
    size_t len;
    bool deleted; /* STATE_DEL: whether there was a value */
};

/* Called exactly once per request, possibly before state_request
 * returns (then it returns 1). */
typedef void state_fn(const struct state_result *res, void *arg);

struct state_req {
    enum state_op op;
    const char *key; /* "scenario/key", without the global prefix */
    size_t klen;
    enum kv_type type; /* STATE_SET: the value's type (KV_NONE deletes) */
    double num;        /* STATE_SET number, STATE_INCR increment */
    const char *str;
    size_t len;
    double ttl; /* seconds, <= 0: none */
};

struct state *state_new(struct emu *e, struct net *n, bool poll_clock,
                        char *err, size_t errlen);
void state_free(struct state *st);
bool state_is_async(const struct state *st);

/* Returns 1 when done already, 0 when the callback comes later. */
int state_request(struct state *st, const struct state_req *rq, double now,
                  state_fn *fn, void *arg);

/* The API's view: every entry, and clearing. With Redis these wait for
 * the answer, so they take a callback too. */
typedef void state_list_fn(const char *key, size_t klen,
                           const struct kv_value *v, void *arg);
typedef void state_done_fn(const char *err, void *arg);
int state_list(struct state *st, double now, state_list_fn *each,
               state_done_fn *done, void *arg);
int state_clear(struct state *st, state_done_fn *done, void *arg);
/* Set the scenario clock's offset, or add to it (relative); with Redis
 * this moves it for all replicas. */
int state_clock_set(struct state *st, double seconds, bool relative,
                    state_done_fn *done, void *arg);

#endif
