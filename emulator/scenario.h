/*
 * scenario: finding, loading and describing scenario files, and the
 * command-line actions around them (--list-scenarios, --describe,
 * --check-scenario). The per-worker Lua engine that runs hooks is script.c.
 */
#ifndef EMU_SCENARIO_H
#define EMU_SCENARIO_H

#include <stddef.h>

struct emu;
struct config;

/* Run a CLI action; returns the exit status. */
int scenario_cli(struct emu *e, const struct config *cfg, char *err,
                 size_t errlen);
/* Load the scenarios the listeners use and validate --set parameters.
 * -1 with one line in `err` (file and line for a broken scenario). */
int scenario_setup(struct emu *e, const struct config *cfg, char *err,
                   size_t errlen);
void scenario_teardown(struct emu *e);

#endif
