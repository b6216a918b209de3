/*
 * store: doubly linked lists (newest first) of messages and session
 * records under one mutex. The lock is taken per operation and never held
 * across I/O. Live session records are never evicted: only records whose
 * session has ended are dropped past --max-sessions.
 */
#include "store.h"

#include <string.h>

int
store_init(struct store *st, unsigned max_messages, uint64_t max_bytes,
           unsigned max_sessions, size_t transcript_max)
{
    memset(st, 0, sizeof(*st));
    if (pthread_mutex_init(&st->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&st->changed, NULL) != 0) {
        pthread_mutex_destroy(&st->mu);
        return -1;
    }
    st->max_messages = max_messages;
    st->max_bytes = max_bytes;
    st->max_sessions = max_sessions;
    st->transcript_max = transcript_max;
    return 0;
}

struct store_msg *
store_msg_new(const char *mail_from, const char *params, size_t params_len,
              const char *const *rcpts, size_t n_rcpts, const char *helo,
              const char *auth_user)
{
    size_t fl = strlen(mail_from), hl = strlen(helo);
    size_t al = auth_user ? strlen(auth_user) + 1 : 0;
    size_t need = sizeof(struct store_msg) + n_rcpts * sizeof(char *) + fl + 1 +
                  params_len + 1 + hl + 1 + al;
    size_t *rl = NULL, rl_small[16];
    if (n_rcpts > EMU_ARRAY_LEN(rl_small)) {
        rl = emu_malloc(n_rcpts * sizeof(*rl));
        if (rl == NULL)
            return NULL;
    } else {
        rl = rl_small;
    }
    for (size_t i = 0; i < n_rcpts; i++) {
        rl[i] = strlen(rcpts[i]);
        need += rl[i] + 1;
    }
    struct store_msg *m = emu_malloc(need);
    if (m == NULL) {
        if (rl != rl_small)
            emu_free(rl);
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    m->packed = true;
    char **arr = (char **)(m + 1);
    char *p = (char *)(arr + n_rcpts);
#define PUT(dst, src, len)                                                     \
    do {                                                                       \
        (dst) = p;                                                             \
        memcpy(p, (src), (len));                                               \
        p[len] = '\0';                                                         \
        p += (len) + 1;                                                        \
    } while (0)
    PUT(m->mail_from, mail_from, fl);
    PUT(m->mail_params, params, params_len);
    PUT(m->helo, helo, hl);
    if (auth_user)
        PUT(m->auth_user, auth_user, al - 1);
    for (size_t i = 0; i < n_rcpts; i++)
        PUT(arr[i], rcpts[i], rl[i]);
#undef PUT
    m->rcpts = arr;
    m->n_rcpts = n_rcpts;
    if (rl != rl_small)
        emu_free(rl);
    return m;
}

void
store_msg_free(struct store_msg *m)
{
    if (m == NULL)
        return;
    if (m->packed) {
        emu_free(m->data);
        emu_free(m);
        return;
    }
    emu_free(m->mail_from);
    emu_free(m->mail_params);
    for (size_t i = 0; i < m->n_rcpts; i++)
        emu_free(m->rcpts[i]);
    emu_free(m->rcpts);
    emu_free(m->data);
    emu_free(m->helo);
    emu_free(m->auth_user);
    emu_free(m);
}

static void
session_free(struct store_session *r)
{
    emu_free(r->scenario);
    emu_free(r->helo);
    emu_free(r->cert_subject);
    emu_free(r->cert_issuer);
    emu_free(r->cert_sans);
    emu_free(r->cert_error);
    emu_free(r->auth_mech);
    emu_free(r->auth_user);
    buf_cleanup(&r->transcript);
    emu_free(r);
}

void
store_cleanup(struct store *st)
{
    struct store_msg *m = st->msg_newest;
    while (m) {
        struct store_msg *next = m->older;
        store_msg_free(m);
        m = next;
    }
    struct store_session *r = st->sess_newest;
    while (r) {
        struct store_session *next = r->older;
        session_free(r);
        r = next;
    }
    pthread_cond_destroy(&st->changed);
    pthread_mutex_destroy(&st->mu);
    memset(st, 0, sizeof(*st));
}

void
store_lock(struct store *st)
{
    pthread_mutex_lock(&st->mu);
}

void
store_unlock(struct store *st)
{
    pthread_mutex_unlock(&st->mu);
}

static void
unlink_msg(struct store *st, struct store_msg *m)
{
    if (m->newer)
        m->newer->older = m->older;
    else
        st->msg_newest = m->older;
    if (m->older)
        m->older->newer = m->newer;
    else
        st->msg_oldest = m->newer;
    st->n_msgs--;
    st->msg_bytes -= m->size;
}

void
store_put_message(struct store *st, struct store_msg *m)
{
    pthread_mutex_lock(&st->mu);
    m->older = st->msg_newest;
    m->newer = NULL;
    if (st->msg_newest)
        st->msg_newest->newer = m;
    else
        st->msg_oldest = m;
    st->msg_newest = m;
    st->n_msgs++;
    st->msg_bytes += m->size;
    while (st->msg_oldest && st->msg_oldest != m &&
           (st->n_msgs > st->max_messages || st->msg_bytes > st->max_bytes)) {
        struct store_msg *old = st->msg_oldest;
        unlink_msg(st, old);
        store_msg_free(old);
    }
    if (st->max_messages == 0) {
        unlink_msg(st, m);
        store_msg_free(m);
    }
    st->msg_generation++;
    pthread_cond_broadcast(&st->changed);
    pthread_mutex_unlock(&st->mu);
}

static void
unlink_session(struct store *st, struct store_session *r)
{
    if (r->newer)
        r->newer->older = r->older;
    else
        st->sess_newest = r->older;
    if (r->older)
        r->older->newer = r->newer;
    else
        st->sess_oldest = r->newer;
    st->n_sessions--;
}

/* Drop ended records, oldest first, while over the cap. */
static void
trim_sessions(struct store *st)
{
    struct store_session *r = st->sess_oldest;
    while (r && st->n_sessions > st->max_sessions) {
        struct store_session *newer = r->newer;
        if (r->end > 0) {
            unlink_session(st, r);
            session_free(r);
        }
        r = newer;
    }
}

struct store_session *
store_session_new(struct store *st, uint64_t id)
{
    struct store_session *r = emu_calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->id = id;
    str_copy(r->outcome, sizeof(r->outcome), "active");
    pthread_mutex_lock(&st->mu);
    r->older = st->sess_newest;
    if (st->sess_newest)
        st->sess_newest->newer = r;
    else
        st->sess_oldest = r;
    st->sess_newest = r;
    st->n_sessions++;
    trim_sessions(st);
    pthread_mutex_unlock(&st->mu);
    return r;
}

void
store_session_end(struct store *st, struct store_session *r, double end)
{
    pthread_mutex_lock(&st->mu);
    r->end = end;
    trim_sessions(st);
    pthread_mutex_unlock(&st->mu);
}

void
store_transcript_add(struct store *st, struct store_session *r, double t,
                     enum transcript_dir dir, const char *p, size_t len)
{
    pthread_mutex_lock(&st->mu);
    if (r->transcript_truncated) {
        pthread_mutex_unlock(&st->mu);
        return;
    }
    size_t need = sizeof(double) + 1 + sizeof(uint32_t) + len;
    if (r->transcript.len + need > st->transcript_max || len > UINT32_MAX) {
        r->transcript_truncated = true;
        pthread_mutex_unlock(&st->mu);
        return;
    }
    uint32_t l32 = (uint32_t)len;
    if (buf_reserve(&r->transcript, need) == 0) {
        /* One record, written in place: [time][dir][len][bytes]. */
        char *d = r->transcript.data + r->transcript.len;
        memcpy(d, &t, sizeof(t));
        d[sizeof(t)] = (char)dir;
        memcpy(d + sizeof(t) + 1, &l32, sizeof(l32));
        if (len)
            memcpy(d + sizeof(t) + 1 + sizeof(l32), p, len);
        r->transcript.len += need;
        r->transcript.data[r->transcript.len] = '\0';
    } else {
        r->transcript_truncated = true;
    }
    pthread_mutex_unlock(&st->mu);
}

void
store_session_set(struct store *st, char **field, const char *val)
{
    char *copy = val ? emu_strdup(val) : NULL;
    pthread_mutex_lock(&st->mu);
    emu_free(*field);
    *field = copy;
    pthread_mutex_unlock(&st->mu);
}

bool
store_delete_message(struct store *st, const char *id)
{
    pthread_mutex_lock(&st->mu);
    struct store_msg *m = st->msg_newest;
    while (m && strcmp(m->id, id) != 0)
        m = m->older;
    if (m) {
        unlink_msg(st, m);
        store_msg_free(m);
        st->msg_generation++;
    }
    pthread_mutex_unlock(&st->mu);
    return m != NULL;
}

void
store_clear_messages(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    while (st->msg_newest) {
        struct store_msg *m = st->msg_newest;
        unlink_msg(st, m);
        store_msg_free(m);
    }
    st->msg_generation++;
    pthread_mutex_unlock(&st->mu);
}

void
store_clear_sessions(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    struct store_session *r = st->sess_oldest;
    while (r) {
        struct store_session *newer = r->newer;
        if (r->end > 0) {
            unlink_session(st, r);
            session_free(r);
        }
        r = newer;
    }
    pthread_mutex_unlock(&st->mu);
}
