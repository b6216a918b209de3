/*
 * api: the control API (/api/v1/...), /healthz and /metrics, served by
 * worker 0 over net_http. It reads the store, the state and the scenario
 * registry; it never touches a live session. Started by main.c when --api
 * is given.
 */
#ifndef EMU_API_H
#define EMU_API_H

#include <stddef.h>
#include <stdint.h>

struct emu;
struct net;

/* Listen on --api; 0 or -1 with one line in err. */
int api_start(struct emu *e, struct net *n, char *err, size_t errlen);
uint16_t api_port(const struct emu *e);
void api_stop(struct emu *e);

/* Constant-time comparison of a presented token with the expected one. */
int api_token_ok(const char *presented, const char *expected);

#endif
