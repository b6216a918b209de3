/*
 * script: placeholder engine used until the Lua engine lands: no scenario,
 * every session runs on the built-in defaults.
 */
#include "script.h"

#include <stdio.h>

struct script_engine *
script_engine_new(struct emu *e, struct worker *w, char *err, size_t errlen)
{
    (void)e;
    (void)w;
    if (errlen)
        err[0] = '\0';
    return NULL;
}

void
script_engine_free(struct script_engine *se)
{
    (void)se;
}

struct script_session *
script_session_new(struct script_engine *se, struct smtp_session *s,
                   const char *scenario)
{
    (void)se;
    (void)s;
    (void)scenario;
    return NULL;
}

void
script_session_end(struct script_engine *se, struct smtp_session *s,
                   struct script_session *ss)
{
    (void)se;
    (void)s;
    (void)ss;
}

const char *
script_session_scenario(const struct script_session *ss)
{
    (void)ss;
    return NULL;
}

void
script_decide(struct script_engine *se, struct smtp_session *s,
              struct script_session *ss, enum smtp_stage stage,
              struct decision *out)
{
    (void)se;
    (void)s;
    (void)ss;
    (void)stage;
    (void)out;
}

void
script_starttls_command(struct script_engine *se, struct smtp_session *s,
                        struct script_session *ss, struct decision *out)
{
    (void)se;
    (void)s;
    (void)ss;
    (void)out;
}

const char *
script_ehlo_keywords(const struct script_session *ss)
{
    (void)ss;
    return NULL;
}

const char *
script_banner(const struct script_session *ss)
{
    (void)ss;
    return NULL;
}

uint64_t
script_body_limit(const struct script_session *ss)
{
    (void)ss;
    return UINT64_MAX;
}

void
script_body_start(struct script_engine *se, struct smtp_session *s,
                  struct script_session *ss)
{
    (void)se;
    (void)s;
    (void)ss;
}

void
script_body_cut(struct script_engine *se, struct smtp_session *s,
                struct script_session *ss, struct decision *out)
{
    (void)se;
    (void)s;
    (void)ss;
    (void)out;
}

void
script_tx_reset(struct script_engine *se, struct smtp_session *s,
                struct script_session *ss)
{
    (void)se;
    (void)s;
    (void)ss;
}

void
script_client_changed(struct script_engine *se, struct smtp_session *s,
                      struct script_session *ss)
{
    (void)se;
    (void)s;
    (void)ss;
}
