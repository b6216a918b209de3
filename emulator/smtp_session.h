/*
 * smtp_session: one SMTP conversation. The only module that combines
 * parsing, scenario decisions, the capture store and I/O. It follows the
 * OpenSMTPD shape: a state machine, a command table of check/proceed pairs,
 * every reply through smtp_reply() and every state change through
 * smtp_session_set_state(). Created by server.c for each accepted
 * connection; it frees itself when the conversation ends.
 */
#ifndef EMU_SMTP_SESSION_H
#define EMU_SMTP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "emu.h"

enum smtp_state {
    SMTP_STATE_NEW,           /* accepted, nothing decided yet */
    SMTP_STATE_PROXY,         /* waiting for the PROXY protocol header */
    SMTP_STATE_TLS_ACCEPT,    /* implicit TLS handshake before greeting */
    SMTP_STATE_CMD,           /* reading commands */
    SMTP_STATE_AUTH,          /* reading an AUTH continuation line */
    SMTP_STATE_DATA,          /* reading the DATA body */
    SMTP_STATE_BDAT,          /* reading a BDAT chunk */
    SMTP_STATE_TLS_PENDING,   /* "220 Ready to start TLS" is draining */
    SMTP_STATE_TLS_HANDSHAKE, /* STARTTLS handshake in progress */
    SMTP_STATE_WAIT,          /* a delay timer runs; input is paused */
    SMTP_STATE_HANG,          /* the scenario stopped answering */
    SMTP_STATE_QUIT,          /* closing once output has drained */
};

const char *smtp_state_name(enum smtp_state s);

struct smtp_envelope_args;
struct smtp_command;

/* What a scenario may read of a session. Every pointer is borrowed from
 * the session and valid until the session next runs. */
struct session_view {
    uint64_t id;
    const char *client_ip; /* simulated (XCLIENT/PROXY) or real */
    uint16_t client_port;
    const char *client_name; /* "unknown" unless XCLIENT NAME= */
    const char *peer_ip;     /* the real TCP peer */
    uint16_t peer_port;
    const char *listener; /* "127.0.0.1:2525" */
    const char *helo;     /* NULL before HELO/EHLO */
    bool esmtp;
    const struct net_tls_info *tls; /* NULL without TLS */
    const char *auth_mech;          /* NULL before AUTH */
    const char *auth_user;          /* the (claimed) user */
    const char *auth_secret;        /* only while the auth stage is decided */
    size_t auth_secret_len;
    int auth_step; /* 101: answer to a scenario challenge */
    bool authenticated;
    const char *mail_from; /* NULL outside a transaction; "" for <> */
    const char *mail_params;
    const char *const *rcpts; /* accepted recipients */
    size_t n_rcpts;
    unsigned n_rcpts_refused;
    const struct smtp_envelope_args *env; /* the MAIL/RCPT being decided */
    const struct smtp_command *cmd;       /* the command being decided */
    const char *msg; /* the message so far / at the message stage */
    size_t msg_len;
    bool bdat;
    double start;
    unsigned messages;
    unsigned errors;
};

void smtp_session_view(const struct smtp_session *s, struct session_view *v);
struct decision;
/* A scenario hook that waited (for Redis) has answered: carry on with the
 * stage it was asked about. Takes over the decision's contents. */
void smtp_session_hook_done(struct smtp_session *s, struct decision *d);

/* The worker loop's cached wall clock. */
double smtp_session_now(const struct smtp_session *s);
struct rng *smtp_session_rng(struct smtp_session *s);
void smtp_session_log(struct smtp_session *s, enum log_level lvl,
                      const char *event, const struct log_kv *kv, size_t n);

/* A new connection on listener `l`: takes ownership of `fd`. Called from
 * the accept callback of worker `w`. */
void smtp_session_accept(struct worker *w, const struct listener_spec *l,
                         int fd, const struct sockaddr *sa, socklen_t salen);

/* The next live session of the same worker (for shutdown walks). */
struct smtp_session *smtp_session_next(struct smtp_session *s);

/* Server shutdown: finish the reply in flight, then close. */
void smtp_session_shutdown(struct smtp_session *s);
/* End now, whatever the state (grace period over). */
void smtp_session_abort(struct smtp_session *s, const char *reason);

#endif
