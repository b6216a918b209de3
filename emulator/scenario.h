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
#include <stdbool.h>
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

/* Source of scenario NAME (for emu.use): owned text and path, or NULL. */
char *scenario_source(struct emu *e, const char *name, char **path,
                      size_t *len);

struct scenario_info;
/* Describe every known scenario (loads each in a throwaway state): an
 * owned array of n entries (emu_free). -1 when memory runs out. */
int scenario_list(struct emu *e, struct scenario_info **out, size_t *n);

/* The selection of listener `listener` (SIZE_MAX: the default), copied:
 * name and parameters. Returns 0, or -1 when out of memory. `is_default`
 * tells whether the listener follows the default. */
int scenario_get(struct emu *e, size_t listener, struct scenario_load *out,
                 bool *is_default);

/* Select scenario `name` with parameters for listener `listener`
 * (SIZE_MAX: the default; name NULL: the listener follows the default
 * again). --set NAME.key=value still applies, `keys`/`vals` override it.
 * Checked first: on error the old selection stays and `err` says why.
 * New sessions use the new selection; sessions in flight keep theirs. */
int scenario_select(struct emu *e, size_t listener, const char *name,
                    const char *const *keys, const char *const *vals, size_t n,
                    char *err, size_t errlen);

/* Re-read every scenario file and lua/ module (SIGHUP). A file that fails
 * to load is reported and its previous version kept. Returns the number
 * of files that failed. */
int scenario_reload(struct emu *e);

#endif
