/*
 * store: the capped, thread-safe in-memory record of what clients did:
 * captured messages (with their envelope) and session records (facts,
 * outcome and a byte-exact transcript). Sessions write to it as they go; the
 * control API reads it and never touches a live session. Oldest entries are
 * dropped past the caps. Writing the optional Maildir copy is spool.c's job.
 */
#ifndef EMU_STORE_H
#define EMU_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "util.h"

struct store_msg {
    char id[24]; /* queue ID, as in "queued as ID" */
    uint64_t session_id;
    double time;
    char *mail_from;   /* "" for the null sender */
    char *mail_params; /* the MAIL FROM parameters as sent */
    char **rcpts;
    size_t n_rcpts;
    char *data; /* message bytes as the client meant them */
    size_t size;
    char client_ip[IP_STR_MAX];
    char *helo;
    char *auth_user; /* NULL when not authenticated */
    bool tls;
    bool packed; /* made by store_msg_new: envelope in the same block */
    struct store_msg *newer, *older;
};

/* TR_SCENARIO: a server line the scenario wrote (its decision's reply),
 * so the API can point at the reply a test is about. */
enum transcript_dir {
    TR_CLIENT = 'C',
    TR_SERVER = 'S',
    TR_SCENARIO = 's',
    TR_NOTE = '#'
};

/* A session as the API shows it. Fields are written by the owning session
 * under the store lock (store_session_update) and read by the API. */
struct store_session {
    uint64_t id;
    char client_ip[IP_STR_MAX]; /* as simulated (XCLIENT, PROXY) */
    uint16_t client_port;
    char peer_ip[IP_STR_MAX]; /* the real TCP peer */
    uint16_t peer_port;
    char listener[IP_STR_MAX + 8];
    char *scenario;
    char *helo;
    double start, end; /* end is 0 while live */
    bool tls;
    char tls_version[16], tls_cipher[64];
    bool client_cert, cert_verified;
    char *cert_subject, *cert_issuer, *cert_sans, *cert_error;
    char *auth_mech, *auth_user;
    /* Outcome (see smtp_session.c for the list). */
    char outcome[24];
    int outcome_code;
    int last_code; /* of the last reply the server sent, 0: none */
    char outcome_stage[16];
    unsigned messages;
    /* Transcript: records of [double time][char dir][u32 len][bytes]. */
    struct buf transcript;
    bool transcript_truncated;
    struct store_session *newer, *older;
};

struct store {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* signalled when a message arrives */
    struct store_msg *msg_newest, *msg_oldest;
    size_t n_msgs;
    uint64_t msg_bytes;
    unsigned max_messages;
    uint64_t max_bytes;
    struct store_session *sess_newest, *sess_oldest;
    size_t n_sessions;
    unsigned max_sessions;
    size_t transcript_max;
    uint64_t msg_generation;
};

int store_init(struct store *st, unsigned max_messages, uint64_t max_bytes,
               unsigned max_sessions, size_t transcript_max);
void store_cleanup(struct store *st);

/* Take ownership of `m` and keep it (evicting the oldest past the caps).
 * A message bigger than the byte cap is still kept alone. */
void store_put_message(struct store *st, struct store_msg *m);
/* A zeroed message whose envelope strings (copied) and rcpts array live in
 * the same allocation as the struct: one malloc per message instead of one
 * per string. `auth_user` may be NULL. data is left for the caller (it
 * takes ownership of the buffer it puts there). Returns owned; free with
 * store_msg_free(). NULL when memory runs out. */
struct store_msg *store_msg_new(const char *mail_from, const char *params,
                                size_t params_len, const char *const *rcpts,
                                size_t n_rcpts, const char *helo,
                                const char *auth_user);
void store_msg_free(struct store_msg *m);

/* Session records. store_session_new returns a record owned by the store
 * and registered as live; the session keeps the pointer until
 * store_session_end(). Records of ended sessions may then be dropped. */
struct store_session *store_session_new(struct store *st, uint64_t id);
void store_session_end(struct store *st, struct store_session *r, double end);
/* Append one transcript record (locks). */
void store_transcript_add(struct store *st, struct store_session *r, double t,
                          enum transcript_dir dir, const char *p, size_t len);
/* Replace a string field of a record under the lock (owned copy). */
void store_session_set(struct store *st, char **field, const char *val);

/* Delete one message by id; false when there is none. */
bool store_delete_message(struct store *st, const char *id);
void store_clear_messages(struct store *st);
/* Forget the records of sessions that have ended (live ones stay). */
void store_clear_sessions(struct store *st);

void store_lock(struct store *st);
void store_unlock(struct store *st);

#endif
