/*
 * api_body: parsing of the control API's JSON request bodies with jansson.
 * Pure (no server state): api.c calls it from its handlers, and
 * tests/fuzz/fuzz_json.c and the unit tests call it directly.
 */
#include "api_body.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One parameter value as the command line would give it, or NULL for a
 * value that cannot be one (an object, null) or when memory runs out. */
static char *
param_value(json_t *v, bool *bad)
{
    if (json_is_string(v))
        return emu_strdup(json_string_value(v));
    if (json_is_object(v) || json_is_null(v)) {
        *bad = true;
        return NULL;
    }
    if (!json_is_array(v)) {
        /* A number or a boolean, as JSON writes it. */
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        char *out = s ? emu_strdup(s) : NULL;
        free(s);
        return out;
    }
    struct buf b = {0};
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (json_is_object(item) || json_is_array(item) || json_is_null(item)) {
            *bad = true;
            buf_cleanup(&b);
            return NULL;
        }
        int rc;
        if (json_is_string(item)) {
            rc = buf_append_str(&b, json_string_value(item));
        } else {
            char *s = json_dumps(item, JSON_ENCODE_ANY);
            rc = s ? buf_append_str(&b, s) : -1;
            free(s);
        }
        if (rc < 0 || (i + 1 < json_array_size(v) && buf_append_char(&b, ',')))
            goto oom;
    }
    if (buf_reserve(&b, 1) < 0)
        goto oom;
    return buf_steal(&b, NULL);
oom:
    buf_cleanup(&b);
    return NULL;
}

void
api_selection_free(struct api_selection *s)
{
    for (size_t i = 0; s->vals && i < s->n; i++)
        emu_free(s->vals[i]);
    emu_free(s->vals);
    emu_free(s->keys);
    json_decref(s->doc);
    memset(s, 0, sizeof(*s));
}

int
api_parse_selection(const char *body, size_t len, bool allow_null_name,
                    struct api_selection *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    if (j == NULL || !json_is_object(j)) {
        snprintf(err, errlen, "bad JSON: %s",
                 j ? "expected an object" : jerr.text);
        json_decref(j);
        return -1;
    }
    out->doc = j;
    json_t *name = json_object_get(j, "name");
    json_t *params = json_object_get(j, "params");
    if (!(json_is_string(name) || (json_is_null(name) && allow_null_name)) ||
        (params && !json_is_object(params) && !json_is_null(params))) {
        snprintf(err, errlen,
                 "expected {\"name\": \"SCENARIO\", \"params\": "
                 "{\"key\": \"value\"}}");
        api_selection_free(out);
        return -1;
    }
    out->name = json_is_string(name) ? json_string_value(name) : NULL;
    size_t n = json_is_object(params) ? json_object_size(params) : 0;
    out->keys = emu_calloc(n ? n : 1, sizeof(*out->keys));
    out->vals = emu_calloc(n ? n : 1, sizeof(*out->vals));
    if (out->keys == NULL || out->vals == NULL) {
        snprintf(err, errlen, "out of memory");
        api_selection_free(out);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v)
    {
        bool bad = false;
        char *val = param_value(v, &bad);
        if (val == NULL) {
            snprintf(err, errlen,
                     bad ? "parameter '%s': values must be strings, "
                           "numbers, booleans or lists of them"
                         : "out of memory",
                     key);
            api_selection_free(out);
            return -1;
        }
        out->keys[out->n] = key;
        out->vals[out->n] = val;
        out->n++;
    }
    return 0;
}

int
api_parse_clock(const char *body, size_t len, double *seconds, bool *relative,
                char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    json_t *adv = json_is_object(j) ? json_object_get(j, "advance") : NULL;
    json_t *off = json_is_object(j) ? json_object_get(j, "offset") : NULL;
    /* Exactly one of them, and a number: {"advance": "x", "offset": 5}
     * is a mistake to report, not an offset to set. */
    if ((adv != NULL) == (off != NULL) || !json_is_number(adv ? adv : off)) {
        json_decref(j);
        snprintf(err, errlen,
                 "expected {\"advance\": SECONDS} or {\"offset\": SECONDS}");
        return -1;
    }
    double v = json_number_value(adv ? adv : off);
    *relative = adv != NULL;
    json_decref(j);
    if (!isfinite(v) || fabs(v) > 1e10) {
        snprintf(err, errlen, "seconds out of range");
        return -1;
    }
    *seconds = v;
    return 0;
}
