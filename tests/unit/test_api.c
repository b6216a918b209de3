/*
 * test_api: the control API's bearer-token check (api_token_ok): what it
 * accepts and refuses, and that its time does not depend on where the
 * presented token first differs (a comparison that stops at the first
 * wrong byte lets a client find the token byte by byte). api.c is not a
 * pure module, so this binary links the whole server but main.c, like
 * test_script (mk/unit-api.mk).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"

static void
test_api_token_accepts_only_the_exact_token(void **state)
{
    (void)state;
    assert_true(api_token_ok("t0ken", "t0ken"));
    assert_true(api_token_ok("a", "a"));
    assert_false(api_token_ok("t0kem", "t0ken"));
    assert_false(api_token_ok("T0ken", "t0ken"));
    assert_false(api_token_ok("t0ke", "t0ken"));   /* a prefix */
    assert_false(api_token_ok("t0ken ", "t0ken")); /* longer */
    assert_false(api_token_ok("t0kent0ken", "t0ken"));
    assert_false(api_token_ok("", "t0ken"));
    assert_false(api_token_ok(NULL, "t0ken"));
    /* A NUL ends the presented token: nothing after it counts. */
    assert_false(api_token_ok("t0k\0en", "t0ken"));
}

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The fastest of many runs: the least disturbed by the machine. */
static double
fastest(const char *presented, const char *expected, int want)
{
    double best = 1e18;
    for (int i = 0; i < 200; i++) {
        double t0 = now_ns();
        int ok = api_token_ok(presented, expected);
        double t = now_ns() - t0;
        assert_int_equal(ok, want);
        if (t < best)
            best = t;
    }
    return best;
}

static void
test_api_token_time_does_not_depend_on_the_first_wrong_byte(void **state)
{
    (void)state;
    /* Long enough that the loop dwarfs the clock's own cost: a compare
     * that stops early would be thousands of times faster on a token
     * wrong in its first byte than on one wrong in its last. */
    enum { LEN = 256 * 1024 };
    char *expected = malloc(LEN + 1);
    char *first = malloc(LEN + 1);
    char *last = malloc(LEN + 1);
    char *shorter = malloc(LEN + 1);
    assert_non_null(expected);
    assert_non_null(first);
    assert_non_null(last);
    assert_non_null(shorter);
    for (size_t i = 0; i < LEN; i++)
        expected[i] = (char)('a' + i % 26);
    expected[LEN] = '\0';
    memcpy(first, expected, LEN + 1);
    memcpy(last, expected, LEN + 1);
    memcpy(shorter, expected, LEN + 1);
    first[0] = 'Z';
    last[LEN - 1] = 'Z';
    shorter[1] = '\0';

    double t_first = fastest(first, expected, 0);
    double t_last = fastest(last, expected, 0);
    double t_equal = fastest(expected, expected, 1);
    double t_short = fastest(shorter, expected, 0);
    printf("api_token_ok over %d bytes, fastest of 200 (ns): wrong first "
           "byte %.0f, wrong last byte %.0f, equal %.0f, 1-byte token "
           "%.0f\n",
           LEN, t_first, t_last, t_equal, t_short);
    /* Within a factor of 3 of each other; an early exit gives >1000. */
    assert_true(t_first * 3 > t_last);
    assert_true(t_last * 3 > t_first);
    assert_true(t_first * 3 > t_equal);
    /* A wrong length is no shortcut either: the loop still runs over
     * the whole expected token. */
    assert_true(t_short * 3 > t_equal);
    free(expected);
    free(first);
    free(last);
    free(shorter);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_token_accepts_only_the_exact_token),
        cmocka_unit_test(
            test_api_token_time_does_not_depend_on_the_first_wrong_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
