/*
 * healthcheck: `smtp-emulator --healthcheck URL` performs one HTTP GET
 * (blocking, with a timeout) and exits 0 on a 200 answer, so a container
 * health check needs nothing beyond the image. Plain http:// only.
 */
#ifndef EMU_HEALTHCHECK_H
#define EMU_HEALTHCHECK_H

#include <stddef.h>

/* Returns the exit status: 0 healthy, 1 not, 2 bad URL. */
int healthcheck_run(const char *url, const char *token, char *err,
                    size_t errlen);

#endif
