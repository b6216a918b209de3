/*
 * metrics: process-wide counters for /metrics (Prometheus text format).
 * Plain atomics, relaxed: they are statistics, not synchronisation. Pure.
 */
#ifndef EMU_METRICS_H
#define EMU_METRICS_H

#include <stdatomic.h>

#include "stage.h"

enum outcome {
    OUTCOME_ACTIVE,
    OUTCOME_DELIVERED,    /* at least one message accepted */
    OUTCOME_REJECTED,     /* the last decisive reply was 4xx/5xx */
    OUTCOME_CLOSED,       /* the scenario closed the connection */
    OUTCOME_RESET,        /* the scenario reset it (RST) */
    OUTCOME_HUNG,         /* the scenario stopped answering */
    OUTCOME_DISCONNECTED, /* the client went away (or QUIT) */
    OUTCOME_TIMED_OUT,
    OUTCOME_ERROR, /* a TLS or socket error */
    OUTCOME_COUNT
};

static inline const char *
outcome_name(enum outcome o)
{
    switch (o) {
    case OUTCOME_ACTIVE:
        return "active";
    case OUTCOME_DELIVERED:
        return "delivered";
    case OUTCOME_REJECTED:
        return "rejected";
    case OUTCOME_CLOSED:
        return "closed";
    case OUTCOME_RESET:
        return "reset";
    case OUTCOME_HUNG:
        return "hung";
    case OUTCOME_DISCONNECTED:
        return "disconnected";
    case OUTCOME_TIMED_OUT:
        return "timed_out";
    case OUTCOME_ERROR:
        return "error";
    case OUTCOME_COUNT:
        break;
    }
    return "?";
}

/* Reply codes are counted per first digit class and code (200..599). */
struct metrics {
    atomic_ulong sessions_total;
    atomic_ulong sessions_by_outcome[OUTCOME_COUNT];
    atomic_ulong replies[STAGE_COUNT + 1][400]; /* [stage][code-200] */
    atomic_ulong messages_accepted;
    atomic_ulong bytes_accepted;
    atomic_ulong tls_handshakes;
    atomic_ulong tls_failures;
    atomic_ulong scenario_errors;
    atomic_ulong api_requests;
    atomic_ulong connections_refused; /* over --max-connections */
    atomic_ulong state_errors;        /* Redis unreachable, slow, failing */
    atomic_ulong state_fallbacks;     /* ... answered from memory instead */
};

static inline void
metrics_inc(atomic_ulong *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline void
metrics_add(atomic_ulong *c, unsigned long n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif
