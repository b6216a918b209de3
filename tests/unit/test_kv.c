/*
 * test_kv: the scenario state store: values, expiry on the caller's clock,
 * counters, the entry cap, and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"
#include "util.h"

#define K(s) (s), strlen(s)

static void
test_kv_set_get_string_and_number(void **state)
{
    (void)state;
    struct kv kv;
    assert_int_equal(kv_init(&kv, 100), 0);
    assert_int_equal(kv_set_string(&kv, K("a"), "hello", 5, 0, 100), 0);
    assert_int_equal(kv_set_number(&kv, K("n"), 42.5, 0, 100), 0);
    struct kv_value v;
    assert_int_equal(kv_get(&kv, K("a"), 100, &v), 0);
    assert_int_equal(v.type, KV_STRING);
    assert_int_equal(v.len, 5);
    assert_memory_equal(v.str, "hello", 5);
    emu_free(v.str);
    assert_int_equal(kv_get(&kv, K("n"), 100, &v), 0);
    assert_int_equal(v.type, KV_NUMBER);
    assert_true(v.num == 42.5);
    assert_int_equal(kv_get(&kv, K("missing"), 100, &v), 0);
    assert_int_equal(v.type, KV_NONE);
    /* Overwrite changes the type. */
    assert_int_equal(kv_set_number(&kv, K("a"), 1, 0, 100), 0);
    assert_int_equal(kv_get(&kv, K("a"), 100, &v), 0);
    assert_int_equal(v.type, KV_NUMBER);
    kv_cleanup(&kv);
}

static void
test_kv_expiry_follows_the_callers_clock(void **state)
{
    (void)state;
    struct kv kv;
    assert_int_equal(kv_init(&kv, 100), 0);
    assert_int_equal(kv_set_number(&kv, K("t"), 1, 10, 1000), 0);
    struct kv_value v;
    kv_get(&kv, K("t"), 1009.9, &v);
    assert_int_equal(v.type, KV_NUMBER);
    kv_get(&kv, K("t"), 1010, &v);
    assert_int_equal(v.type, KV_NONE);
    /* Gone for good, even when asked with an earlier time. */
    kv_get(&kv, K("t"), 1000, &v);
    assert_int_equal(v.type, KV_NONE);
    kv_cleanup(&kv);
}

static void
test_kv_incr_window(void **state)
{
    (void)state;
    struct kv kv;
    double out;
    assert_int_equal(kv_init(&kv, 100), 0);
    assert_int_equal(kv_incr(&kv, K("c"), 1, 60, false, 0, &out), 0);
    assert_true(out == 1);
    assert_int_equal(kv_incr(&kv, K("c"), 2, 60, false, 30, &out), 0);
    assert_true(out == 3);
    /* The window was set at creation (t=0): at t=60 it starts over. */
    assert_int_equal(kv_incr(&kv, K("c"), 1, 60, false, 60, &out), 0);
    assert_true(out == 1);
    /* A string cannot be counted. */
    kv_set_string(&kv, K("s"), "x", 1, 0, 0);
    assert_int_equal(kv_incr(&kv, K("s"), 1, 0, false, 0, &out), -1);
    kv_cleanup(&kv);
}

static void
count(const char *k, size_t kl, const struct kv_value *v, void *a)
{
    (void)k;
    (void)kl;
    (void)v;
    (*(size_t *)a)++;
}

static void
test_kv_del_clear_and_each(void **state)
{
    (void)state;
    struct kv kv;
    assert_int_equal(kv_init(&kv, 1000), 0);
    char key[32];
    for (int i = 0; i < 600; i++) { /* forces the table to grow */
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(kv_set_number(&kv, K(key), i, i < 300 ? 5 : 0, 0), 0);
    }
    assert_true(kv_del(&kv, K("k599")));
    assert_false(kv_del(&kv, K("k599")));
    size_t n = 0;
    kv_each(&kv, 10, count, &n);
    assert_int_equal(n, 299); /* 300 expired at t=10, one deleted */
    kv_clear(&kv);
    n = 0;
    kv_each(&kv, 0, count, &n);
    assert_int_equal(n, 0);
    kv_cleanup(&kv);
}

static void
test_kv_cap_counts_live_entries(void **state)
{
    (void)state;
    struct kv kv;
    assert_int_equal(kv_init(&kv, 3), 0);
    assert_int_equal(kv_set_number(&kv, K("a"), 1, 1, 0), 0);
    assert_int_equal(kv_set_number(&kv, K("b"), 1, 0, 0), 0);
    assert_int_equal(kv_set_number(&kv, K("c"), 1, 0, 0), 0);
    /* Full at t=0 ... */
    assert_int_equal(kv_set_number(&kv, K("d"), 1, 0, 0), -1);
    /* ... but "a" has expired at t=2, so the sweep makes room. */
    assert_int_equal(kv_set_number(&kv, K("d"), 1, 0, 2), 0);
    kv_cleanup(&kv);
}

static void
test_kv_allocation_failures(void **state)
{
    (void)state;
    for (long n = 0; n < 20; n++) {
        struct kv kv;
        emu_alloc_fail_after(n);
        if (kv_init(&kv, 10) < 0) {
            emu_alloc_fail_after(-1);
            continue;
        }
        int a = kv_set_string(&kv, K("key"), "value", 5, 0, 0);
        struct kv_value v;
        int b = kv_get(&kv, K("key"), 0, &v);
        emu_alloc_fail_after(-1);
        if (a == 0 && b == 0 && v.type == KV_STRING)
            emu_free(v.str);
        kv_cleanup(&kv);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_set_get_string_and_number),
        cmocka_unit_test(test_kv_expiry_follows_the_callers_clock),
        cmocka_unit_test(test_kv_incr_window),
        cmocka_unit_test(test_kv_del_clear_and_each),
        cmocka_unit_test(test_kv_cap_counts_live_entries),
        cmocka_unit_test(test_kv_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
