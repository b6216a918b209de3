/*
 * scenario: the scenario registry shared by all workers: the source text of
 * every scenario file and of the lua/ helper modules (read once, so a worker
 * never touches the disk while serving), which scenario and parameters the
 * default and each listener use, and the command-line actions around them
 * (--list-scenarios, --describe, --check-scenario). Workers copy what they
 * need under the lock and load it into their own Lua states (script.c).
 */
#ifndef EMU_SCENARIO_H
#define EMU_SCENARIO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct emu;
struct config;

/* A scenario selection: a scenario name (or file path) with parameters. */
struct scenario_conf {
    uint64_t id; /* changes whenever the selection changes */
    char *name;
    char **keys, **vals;
    size_t n;
};

/* Owned copy of what a worker needs to load one configuration. */
struct scenario_load {
    uint64_t id;
    char *name;
    char *path;
    char *text;
    size_t len;
    char **keys, **vals;
    size_t n;
};

void scenario_load_free(struct scenario_load *l);

/* Run a CLI action; returns the exit status. */
int scenario_cli(struct emu *e, const struct config *cfg, char *err,
                 size_t errlen);
/* Read scenarios and lua/ helpers, build and validate the default and
 * per-listener selections. -1 with one line in `err` (file and line for a
 * broken scenario, the parameter for a bad --set). */
int scenario_setup(struct emu *e, const struct config *cfg, char *err,
                   size_t errlen);
void scenario_teardown(struct emu *e);

/* The selection for listener `i` (default when it has none): returns its
 * id, and when `out` is non-NULL an owned copy to load. 0 on failure. */
uint64_t scenario_current(struct emu *e, size_t listener,
                          struct scenario_load *out);
/* Source of the helper module lua/NAME.lua; owned copy or NULL. */
char *scenario_lib_text(struct emu *e, const char *name, size_t *len);

#endif
