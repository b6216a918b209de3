/*
 * decision: what the session does at a stage, as a plain value (DESIGN.md,
 * smtp-sink's per-command flags). Built-in defaults and Lua scenarios both
 * produce one; smtp_session carries it out and never asks where it came
 * from. Pure.
 */
#ifndef EMU_DECISION_H
#define EMU_DECISION_H

#include <stdint.h>

#include "util.h"

enum decide_kind {
    DECIDE_DEFAULT,     /* what the server would do without a scenario */
    DECIDE_REPLY,       /* send `reply` instead of the default reply */
    DECIDE_REPLY_CLOSE, /* send `reply`, then close (421 usually) */
    DECIDE_DROP,        /* close without a reply (FIN) */
    DECIDE_RESET,       /* abort with a TCP RST */
    DECIDE_HANG,        /* stop answering; keep the socket until the client
                           leaves or `hang_ms` passes */
    DECIDE_PARTIAL,     /* send `reply` bytes as they are (no CRLF added),
                           then close */
};

const char *decide_kind_name(enum decide_kind k);

/* What happens after a REPLY or PARTIAL has been sent, and what happens
 * when a DATA body reaches `cut_bytes`. */
enum decide_then {
    THEN_NONE,
    THEN_CLOSE,          /* FIN once the bytes have left */
    THEN_RESET,          /* RST once the bytes have left */
    THEN_HANG,           /* stop answering, keep the socket */
    THEN_CLOSE_ON_INPUT, /* wait for the client's next bytes, then FIN
                            (e.g. its TLS ClientHello: a broken handshake) */
    THEN_RESET_ON_INPUT, /* the same with RST */
};

const char *decide_then_name(enum decide_then t);

struct decision {
    enum decide_kind kind;
    /* Formatted reply text (lines separated by '\n', no CRLF) for REPLY and
     * REPLY_CLOSE; raw bytes for PARTIAL. Owned by the decision. */
    struct buf reply;
    uint32_t delay_ms; /* wait this long before acting (a timer) */
    uint32_t hang_ms;  /* HANG: 0 means the default (600 s) */
    enum decide_then then;
    /* DATA/BDAT stage only: after this many body bytes (0: never), do
     * `cut_then` instead of reading the rest. */
    uint64_t cut_bytes;
    enum decide_then cut_then;
    /* Send each line of the reply this long after the previous one (a
     * tarpit); applies to the stage's default reply too. */
    uint32_t line_delay_ms;
    /* Before a TLS handshake (on_tls): which server certificate
     * ("expired", "selfsigned", "wronghost"; "" for the default) and which
     * protocol versions ("1.0-1.1", "1.3"; "" for the default). */
    char tls_cert[32];
    char tls_versions[16];
};

void decision_init(struct decision *d);
void decision_cleanup(struct decision *d);

#endif
