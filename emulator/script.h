/*
 * script: the Lua 5.4 scenario engine as smtp_session sees it. Each worker
 * has one engine; each scenario configuration (a scenario with its
 * parameters) gets its own lua_State in that worker, with a memory cap, a
 * sandboxed _ENV and an instruction budget per hook call; each SMTP session
 * gets a coroutine in it. A scenario runtime error becomes "451 4.3.0
 * Error: internal scenario error" for that session only. Every call is made
 * from the worker's event loop thread. The emu.* library is script_api.c.
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

/* Hooks a scenario may define, one per stage plus on_command. */
enum script_hook {
    HOOK_CONNECT,
    HOOK_EHLO,
    HOOK_STARTTLS,
    HOOK_AUTH,
    HOOK_MAIL,
    HOOK_RCPT,
    HOOK_DATA,
    HOOK_MESSAGE,
    HOOK_QUIT,
    HOOK_DISCONNECT,
    HOOK_COMMAND, /* any command line, before the server handles it */
    HOOK_TLS,     /* before a TLS handshake: pick certificate, versions */
    HOOK_COUNT
};

const char *script_hook_name(enum script_hook h);

/* The worker's engine. NULL with one line in `err` on failure. */
struct script_engine *script_engine_new(struct emu *e, struct worker *w,
                                        char *err, size_t errlen);
void script_engine_free(struct script_engine *se);

/* A session on listener `listener` (index into emu->listeners). NULL when
 * the scenario could not be set up; the session then runs on defaults. */
struct script_session *script_session_new(struct script_engine *se,
                                          struct smtp_session *s,
                                          size_t listener);
/* Runs on_disconnect, then releases the coroutine and references. */
void script_session_end(struct script_session *ss, const char *outcome,
                        int code, const char *stage);
const char *script_session_scenario(const struct script_session *ss);

/* Ask the scenario's hook for `stage`; `out` stays DECIDE_DEFAULT when the
 * scenario has no hook or no opinion. Never fails: a scenario error becomes
 * the 451 reply above. Returns SCRIPT_DONE with `out` filled, or
 * SCRIPT_PENDING when the hook waits (for Redis): the answer then comes
 * through smtp_session_hook_done(). */
#define SCRIPT_DONE 0
#define SCRIPT_PENDING 1
int script_decide(struct script_session *ss, enum smtp_stage stage,
                  struct decision *out);
/* on_tls: before a TLS handshake (STARTTLS or implicit TLS). Never waits:
 * emu.state calls there fail when they would. */
void script_tls(struct script_session *ss, struct decision *out);
/* on_command: before the server handles a command line. */
int script_command(struct script_session *ss, const char *verb,
                   const char *args, size_t args_len, struct decision *out);
/* True when the scenario defines a hook (so callers can skip work). */
int script_has_hook(const struct script_session *ss, enum script_hook h);

/* Overrides a hook may set: EHLO keywords ('\n'-separated) and the
 * greeting text. NULL: the defaults. */
const char *script_ehlo_keywords(const struct script_session *ss);
const char *script_banner(const struct script_session *ss);

/* Tell the scenario's per-transaction data to reset (RSET, end of
 * message, new HELO, STARTTLS). */
void script_tx_reset(struct script_session *ss);

/* The scenario clock: real time plus the engine's offset (--clock-offset,
 * POST /api/v1/clock). Every expiry in emu.state follows it. */
double script_now(const struct emu *e);

/* Load and run a scenario file's top level in a throwaway state to check
 * it: fills `name`, `description` and the JSON-free parameter listing.
 * Used by scenario.c for --list-scenarios, --describe and validation. */
struct scenario_info {
    char name[64];
    char description[512];
    char replies[16384]; /* what the scenario answers (free text) */
    struct scenario_param_info {
        char name[64];
        char type[16];
        char def[256];
        char help[512];
        char choices[2048];
    } params[32];
    size_t n_params;
};

/* Validate `text` (from `path`) with parameter overrides (keys[i]=vals[i]):
 * returns 0 and fills `info`, or -1 with "path:line: message" or
 * "parameter 'x': ..." in `err`. `emu` provides the lua/ libraries. */
int script_check(struct emu *e, const char *path, const char *text, size_t len,
                 const char *const *keys, const char *const *vals, size_t n,
                 struct scenario_info *info, char *err, size_t errlen);

#endif
