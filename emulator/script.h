/*
 * script: the scenario engine's face towards smtp_session. One engine per
 * worker (one lua_State), one script_session per SMTP session. Every call is
 * made from the worker's event loop. A session with no script_session (the
 * engine refused it) behaves exactly like the built-in defaults.
 */
#ifndef EMU_SCRIPT_H
#define EMU_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "decision.h"
#include "stage.h"

struct emu;
struct worker;
struct smtp_session;
struct script_engine;
struct script_session;

/* Create the worker's engine: loads every scenario the listeners use. NULL
 * with one line in `err` on failure. */
struct script_engine *script_engine_new(struct emu *e, struct worker *w,
                                        char *err, size_t errlen);
void script_engine_free(struct script_engine *se);

/* Per session: `scenario` is the listener's scenario or NULL for the
 * default. Returns NULL when the engine is absent or out of memory; the
 * session then runs on built-in defaults. */
struct script_session *script_session_new(struct script_engine *se,
                                          struct smtp_session *s,
                                          const char *scenario);
/* Runs the disconnect hook, then releases everything. */
void script_session_end(struct script_engine *se, struct smtp_session *s,
                        struct script_session *ss);
const char *script_session_scenario(const struct script_session *ss);

/* Ask the scenario's hook for `stage`; `out` stays DECIDE_DEFAULT when the
 * scenario has no opinion. Never fails: a scenario error becomes
 * "451 4.3.0 Error: internal scenario error". */
void script_decide(struct script_engine *se, struct smtp_session *s,
                   struct script_session *ss, enum smtp_stage stage,
                   struct decision *out);
/* The STARTTLS command itself (before "220 Ready to start TLS"). */
void script_starttls_command(struct script_engine *se, struct smtp_session *s,
                             struct script_session *ss, struct decision *out);

/* Overrides a hook may set: EHLO keywords ('\n'-separated) and the
 * greeting text. NULL: the defaults. */
const char *script_ehlo_keywords(const struct script_session *ss);
const char *script_banner(const struct script_session *ss);

/* The DATA body: a scenario may cut the session after N body bytes. */
uint64_t script_body_limit(const struct script_session *ss);
void script_body_start(struct script_engine *se, struct smtp_session *s,
                       struct script_session *ss);
void script_body_cut(struct script_engine *se, struct smtp_session *s,
                     struct script_session *ss, struct decision *out);

/* The transaction was reset (RSET, end of message, new HELO). */
void script_tx_reset(struct script_engine *se, struct smtp_session *s,
                     struct script_session *ss);
/* XCLIENT or PROXY changed the client address. */
void script_client_changed(struct script_engine *se, struct smtp_session *s,
                           struct script_session *ss);

#endif
