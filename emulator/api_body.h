/*
 * api_body: the control API's JSON request bodies (PUT .../scenario and
 * POST /api/v1/clock), parsed apart from the HTTP server and the scenario
 * registry, so the parsing can be unit-tested and fuzzed as it runs.
 */
#ifndef EMU_API_BODY_H
#define EMU_API_BODY_H

#include <stdbool.h>
#include <stddef.h>

/* {"name": "SCENARIO", "params": {"key": "value", ...}}. Values may be
 * strings, numbers, booleans or lists (joined with commas, as on the
 * command line). */
struct api_selection {
    void *doc;         /* the parsed document; keys and name point into it */
    const char *name;  /* NULL: {"name": null}, only when allowed */
    const char **keys; /* n keys */
    char **vals;       /* n owned values */
    size_t n;
};

/* Returns 0 with `out` filled (free it with api_selection_free), or -1
 * with a message for a 400 in err. A null name is accepted only with
 * allow_null_name (a listener going back to the default). */
int api_parse_selection(const char *body, size_t len, bool allow_null_name,
                        struct api_selection *out, char *err, size_t errlen);
void api_selection_free(struct api_selection *s);

/* {"advance": SECONDS} (relative) or {"offset": SECONDS}: exactly one of
 * them, a finite number of at most 1e10. Returns 0 or -1 with a message. */
int api_parse_clock(const char *body, size_t len, double *seconds,
                    bool *relative, char *err, size_t errlen);

#endif
