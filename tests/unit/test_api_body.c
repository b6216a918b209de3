/*
 * Unit tests for api_body.c: the control API's JSON bodies for PUT
 * .../scenario and POST /api/v1/clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "api_body.h"
#include "util.h"

static int
sel(const char *body, bool allow_null, struct api_selection *out, char *err)
{
    return api_parse_selection(body, strlen(body), allow_null, out, err, 256);
}

static void
test_api_body_selection(void **state)
{
    (void)state;
    struct api_selection s;
    char err[256];
    assert_int_equal(sel("{\"name\": \"greylisting\", \"params\": {\"delay\": "
                         "60, \"style\": \"postgrey\", \"on\": true, "
                         "\"list\": [\"a\", 2, false]}}",
                         false, &s, err),
                     0);
    assert_string_equal(s.name, "greylisting");
    assert_int_equal(s.n, 4);
    const char *want[][2] = {{"delay", "60"},
                             {"style", "postgrey"},
                             {"on", "true"},
                             {"list", "a,2,false"}};
    for (size_t i = 0; i < 4; i++) {
        bool found = false;
        for (size_t k = 0; k < s.n; k++)
            if (strcmp(s.keys[k], want[i][0]) == 0) {
                assert_string_equal(s.vals[k], want[i][1]);
                found = true;
            }
        assert_true(found);
    }
    api_selection_free(&s);
    /* No params at all, or null params. */
    assert_int_equal(sel("{\"name\": \"accept\"}", false, &s, err), 0);
    assert_int_equal(s.n, 0);
    api_selection_free(&s);
    assert_int_equal(
        sel("{\"name\": \"accept\", \"params\": null}", false, &s, err), 0);
    api_selection_free(&s);
    /* A null name only where allowed (a listener back to the default). */
    assert_int_equal(sel("{\"name\": null}", true, &s, err), 0);
    assert_null(s.name);
    api_selection_free(&s);
    assert_int_equal(sel("{\"name\": null}", false, &s, err), -1);
    assert_non_null(strstr(err, "expected {\"name\""));
}

static void
test_api_body_selection_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *needle;
    } cases[] = {
        {"{not json", "bad JSON"},
        {"[1, 2]", "expected an object"},
        {"\"x\"", "bad JSON"},
        {"", "bad JSON"},
        {"{\"params\": {}}", "expected {\"name\""},
        {"{\"name\": 5}", "expected {\"name\""},
        {"{\"name\": \"a\", \"params\": [1]}", "expected {\"name\""},
        {"{\"name\": \"a\", \"params\": {\"k\": {}}}", "parameter 'k'"},
        {"{\"name\": \"a\", \"params\": {\"k\": null}}", "parameter 'k'"},
        {"{\"name\": \"a\", \"params\": {\"k\": [1, {}]}}", "parameter 'k'"},
        {"{\"name\": \"a\", \"params\": {\"k\": [[1]]}}", "parameter 'k'"},
        {"{\"name\": \"a\", \"params\": {\"k\": [null]}}", "parameter 'k'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct api_selection s;
        char err[256] = "";
        assert_int_equal(sel(cases[i].body, true, &s, err), -1);
        assert_non_null(strstr(err, cases[i].needle));
        /* Nothing is left to free after a refusal. */
        assert_null(s.doc);
        assert_null(s.vals);
    }
}

static void
test_api_body_selection_alloc_failures(void **state)
{
    (void)state;
    const char *body = "{\"name\": \"x\", \"params\": {\"a\": \"1\", \"b\": "
                       "[1, 2, 3], \"c\": 4}}";
    bool ok = false;
    for (long n = 0; n < 50 && !ok; n++) {
        struct api_selection s;
        char err[256];
        emu_alloc_fail_after(n);
        int rc = sel(body, false, &s, err);
        emu_alloc_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(s.n, 3);
            api_selection_free(&s);
            ok = true;
        } else {
            assert_string_equal(err, "out of memory");
        }
    }
    assert_true(ok);
}

static void
test_api_body_clock(void **state)
{
    (void)state;
    double v;
    bool rel;
    char err[256];
#define CLOCK(b) api_parse_clock(b, strlen(b), &v, &rel, err, sizeof(err))
    assert_int_equal(CLOCK("{\"advance\": 301}"), 0);
    assert_true(v == 301 && rel);
    assert_int_equal(CLOCK("{\"offset\": -5.5}"), 0);
    assert_true(v == -5.5 && !rel);
    assert_int_equal(CLOCK("{\"offset\": 1e10}"), 0);
    static const char *const bad[] = {
        "{}",
        "{\"later\": 1}",
        "{\"advance\": \"x\"}",
        "{\"advance\": \"x\", \"offset\": 500}",
        "{\"advance\": 1, \"offset\": 500}",
        "{\"offset\": null}",
        "[1]",
        "5",
        "{not json",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(CLOCK(bad[i]), -1);
        assert_non_null(strstr(err, "expected {\"advance\""));
    }
    assert_int_equal(CLOCK("{\"advance\": 1e11}"), -1);
    assert_string_equal(err, "seconds out of range");
    assert_int_equal(CLOCK("{\"offset\": -1e11}"), -1);
#undef CLOCK
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_body_selection),
        cmocka_unit_test(test_api_body_selection_refusals),
        cmocka_unit_test(test_api_body_selection_alloc_failures),
        cmocka_unit_test(test_api_body_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
