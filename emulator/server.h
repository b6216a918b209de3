/*
 * server: the listeners and workers. Binds every configured address (port 0
 * resolved once, so all workers share the same port), prints the
 * "listening ..." lines, runs one event loop per worker, hands accepted
 * sockets to smtp_session, and carries out the graceful stop on SIGTERM or
 * SIGINT. Called by main.c.
 */
#ifndef EMU_SERVER_H
#define EMU_SERVER_H

#include <stddef.h>

#include "emu.h"

/* Bind listeners and prepare workers; prints "listening ..." lines. 0, or
 * -1 with one line in `err` (a port in use, out of memory). */
int server_start(struct emu *e, char *err, size_t errlen);
/* Print one "listening KIND HOST:PORT" line per listener, flushed. */
void server_announce(struct emu *e);
/* Run until stopped; returns the exit status. */
int server_run(struct emu *e);
void server_cleanup(struct emu *e);

#endif
