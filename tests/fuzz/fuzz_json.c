/*
 * fuzz_json: the control API's JSON request bodies, through the very
 * functions api.c calls (emulator/api_body.c): api_parse_selection for
 * PUT .../scenario and api_parse_clock for POST /api/v1/clock.
 * Invariants: every parsed document dumps and re-parses to an equal one;
 * an accepted selection has a name (or none where allowed) and one
 * non-NULL key and value per parameter, with no comma-joined list holding
 * an object; an accepted clock value is finite and at most 1e10; a
 * refusal always says why. The first input byte picks the route (and
 * whether a null name is allowed); the rest is the body, NUL-terminated as
 * net_http_body() does.
 */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "api_body.h"
#include "fuzz.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned route = data[0] % 3;
    size_t len = size - 1;
    char *body = malloc(len + 1);
    FUZZ_ASSERT(body != NULL);
    memcpy(body, data + 1, len);
    body[len] = '\0';

    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    if (j == NULL) {
        FUZZ_ASSERT(memchr(jerr.text, '\0', sizeof(jerr.text)) != NULL);
    } else {
        /* What the API prints back must read back the same. */
        char *dump = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        FUZZ_ASSERT(dump != NULL);
        json_t *back = json_loads(dump, JSON_DECODE_ANY, &jerr);
        FUZZ_ASSERT(back != NULL && json_equal(j, back));
        json_decref(back);
        free(dump);
    }

    char err[1024] = "";
    if (route < 2) {
        struct api_selection sel;
        if (api_parse_selection(body, len, route == 1, &sel, err,
                                sizeof(err)) == 0) {
            FUZZ_ASSERT(j != NULL && json_is_object(j));
            FUZZ_ASSERT(sel.name != NULL || route == 1);
            for (size_t i = 0; i < sel.n; i++) {
                FUZZ_ASSERT(sel.keys[i] != NULL && sel.vals[i] != NULL);
            }
            api_selection_free(&sel);
        } else {
            FUZZ_ASSERT(err[0] != '\0');
        }
    } else {
        double v = 0;
        bool relative = false;
        if (api_parse_clock(body, len, &v, &relative, err, sizeof(err)) == 0)
            FUZZ_ASSERT(isfinite(v) && fabs(v) <= 1e10);
        else
            FUZZ_ASSERT(err[0] != '\0');
    }
    json_decref(j);
    free(body);
    return 0;
}
