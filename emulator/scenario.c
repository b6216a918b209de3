/*
 * scenario: placeholder until the Lua engine lands: no scenarios.
 */
#include "scenario.h"

#include <stdio.h>

int
scenario_cli(struct emu *e, const struct config *cfg, char *err, size_t errlen)
{
    (void)e;
    (void)cfg;
    (void)err;
    (void)errlen;
    fprintf(stderr, "smtp-emulator: scenarios are not available yet\n");
    return 2;
}

int
scenario_setup(struct emu *e, const struct config *cfg, char *err,
               size_t errlen)
{
    (void)e;
    (void)cfg;
    (void)err;
    (void)errlen;
    return 0;
}

void
scenario_teardown(struct emu *e)
{
    (void)e;
}
