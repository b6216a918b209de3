/*
 * test_util: allocation wrappers and their fault switch, the growable
 * buffer, string helpers (copy, case-insensitive compare, UTF-8 checking,
 * escaping) and the splitmix64 generator.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "util.h"

#define S(x) x, sizeof(x) - 1

/* ---- allocators ------------------------------------------------------- */

static void
test_util_malloc_zero_returns_pointer(void **state)
{
    (void)state;
    void *p = emu_malloc(0);
    assert_non_null(p);
    emu_free(p);
    p = emu_calloc(0, 0);
    assert_non_null(p);
    emu_free(p);
    p = emu_realloc(NULL, 0);
    assert_non_null(p);
    emu_free(p);
    emu_free(NULL); /* like free(NULL) */
}

static void
test_util_calloc_zeroes_memory(void **state)
{
    (void)state;
    unsigned char *p = emu_calloc(64, 4);
    assert_non_null(p);
    for (size_t i = 0; i < 256; i++)
        assert_int_equal(p[i], 0);
    emu_free(p);
}

static void
test_util_realloc_keeps_contents(void **state)
{
    (void)state;
    char *p = emu_malloc(4);
    assert_non_null(p);
    memcpy(p, "abcd", 4);
    char *q = emu_realloc(p, 4096);
    assert_non_null(q);
    assert_memory_equal(q, "abcd", 4);
    emu_free(q);
}

static void
test_util_strdup_and_strndup_copy(void **state)
{
    (void)state;
    char *a = emu_strdup("hello");
    assert_non_null(a);
    assert_string_equal(a, "hello");
    char *b = emu_strndup("hello world", 5);
    assert_non_null(b);
    assert_string_equal(b, "hello");
    char *c = emu_strndup("a\0b", 3); /* copies raw bytes, terminates */
    assert_non_null(c);
    assert_memory_equal(c, "a\0b", 4);
    char *d = emu_strdup("");
    assert_non_null(d);
    assert_string_equal(d, "");
    emu_free(a);
    emu_free(b);
    emu_free(c);
    emu_free(d);
}

static void
test_util_alloc_fail_after_counts_successes(void **state)
{
    (void)state;
    emu_alloc_fail_after(0);
    assert_null(emu_malloc(1));
    assert_null(emu_calloc(1, 1));
    assert_null(emu_realloc(NULL, 1));
    assert_null(emu_strdup("x"));
    assert_null(emu_strndup("x", 1));

    emu_alloc_fail_after(2);
    void *a = emu_malloc(1);
    void *b = emu_calloc(1, 1);
    void *c = emu_malloc(1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    /* Stays failed until disarmed. */
    assert_null(emu_malloc(1));
    emu_alloc_fail_after(-1);
    c = emu_malloc(1);
    assert_non_null(c);
    emu_free(a);
    emu_free(b);
    emu_free(c);
}

static void
test_util_realloc_failure_keeps_old_block(void **state)
{
    (void)state;
    char *p = emu_strdup("keep");
    assert_non_null(p);
    emu_alloc_fail_after(0);
    assert_null(emu_realloc(p, 1 << 20));
    emu_alloc_fail_after(-1);
    assert_string_equal(p, "keep");
    emu_free(p);
}

/* ---- struct buf ------------------------------------------------------- */

static void
test_util_buf_zero_initialised_is_empty(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    buf_cleanup(&b); /* safe on an empty buffer */
    assert_null(b.data);
    buf_reset(&b, 0);
    assert_null(b.data);
}

static void
test_util_buf_append_terminates(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    assert_int_equal(buf_append_str(&b, "def"), 0);
    assert_int_equal(buf_append_char(&b, 'g'), 0);
    assert_int_equal(b.len, 7);
    assert_string_equal(b.data, "abcdefg");
    assert_true(b.cap > b.len);
    buf_cleanup(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void
test_util_buf_append_empty_allocates_terminator(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_cleanup(&b);
}

static void
test_util_buf_append_binary_bytes(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append(&b, S("a\0b\xff")), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "a\0b\xff", 5);
    assert_int_equal(buf_append_char(&b, '\0'), 0);
    assert_int_equal(b.len, 5);
    buf_cleanup(&b);
}

static void
test_util_buf_grows_over_many_appends(void **state)
{
    (void)state;
    struct buf b = {0};
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_append_char(&b, (char)('a' + i % 26)), 0);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap >= 10001);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    assert_int_equal(b.data[10000], '\0');
    buf_cleanup(&b);
}

static void
test_util_buf_reserve_makes_room(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_reserve(&b, 1000), 0);
    assert_true(b.cap >= 1001);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, ""); /* the invariant holds after reserve */
    size_t cap = b.cap;
    char *data = b.data;
    assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(b.cap, cap); /* no second allocation */
    assert_ptr_equal(b.data, data);
    buf_cleanup(&b);
}

static void
test_util_buf_reserve_rejects_huge_sizes(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "abc"), 0);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(buf_reserve(&b, SIZE_MAX / 2), -1);
    assert_int_equal(buf_append(&b, "x", SIZE_MAX - 1), -1);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    buf_cleanup(&b);
}

static void
test_util_buf_printf_small_and_large(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "42-x");

    char big[1000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 4 + 2 + 999);
    assert_memory_equal(b.data, "42-x[", 5);
    assert_int_equal(b.data[5], 'z');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(strlen(b.data), b.len);

    /* Exactly at the 256-byte boundary of the stack buffer. */
    struct buf c = {0};
    memset(big, 'q', 256);
    big[256] = '\0';
    assert_int_equal(buf_printf(&c, "%s", big), 0);
    assert_int_equal(c.len, 256);
    assert_int_equal(strlen(c.data), 256);
    buf_cleanup(&b);
    buf_cleanup(&c);
}

static void
test_util_buf_printf_empty_format(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    buf_cleanup(&b);
}

static void
test_util_buf_reset_keeps_small_allocation(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "hello"), 0);
    size_t cap = b.cap;
    buf_reset(&b, cap);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_append_str(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    buf_reset(&b, cap - 1); /* bigger than allowed: released */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(buf_append_str(&b, "reuse"), 0);
    assert_string_equal(b.data, "reuse");
    buf_cleanup(&b);
}

static void
test_util_buf_steal_hands_over_data(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "owned"), 0);
    size_t len = 0;
    char *d = buf_steal(&b, &len);
    assert_non_null(d);
    assert_int_equal(len, 5);
    assert_string_equal(d, "owned");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    emu_free(d);

    struct buf e = {0};
    assert_null(buf_steal(&e, NULL));
    assert_int_equal(buf_append_str(&e, "x"), 0);
    d = buf_steal(&e, NULL);
    assert_string_equal(d, "x");
    emu_free(d);
}

static void
test_util_buf_append_failure_leaves_buffer_unchanged(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "abc"), 0);
    char big[300];
    memset(big, 'x', sizeof(big));
    emu_alloc_fail_after(0);
    assert_int_equal(buf_append(&b, big, sizeof(big)), -1);
    assert_int_equal(buf_printf(&b, "%.*s", 300, big), -1);
    assert_int_equal(buf_reserve(&b, 1000), -1);
    emu_alloc_fail_after(-1);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    buf_cleanup(&b);

    struct buf e = {0};
    emu_alloc_fail_after(0);
    assert_int_equal(buf_append_char(&e, 'x'), -1);
    assert_int_equal(buf_append_str(&e, "x"), -1);
    assert_int_equal(buf_printf(&e, "%d", 1), -1);
    emu_alloc_fail_after(-1);
    assert_null(e.data);
    assert_int_equal(e.len, 0);
    assert_int_equal(e.cap, 0);
}

static void
test_util_buf_alloc_failure_loop(void **state)
{
    (void)state;
    char big[700];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    bool ok = false;
    for (long n = 0; n < 100 && !ok; n++) {
        struct buf b = {0};
        emu_alloc_fail_after(n);
        int r = buf_append_str(&b, "start:");
        if (r == 0)
            r = buf_printf(&b, "%s|%d", big, 7);
        if (r == 0)
            for (int i = 0; i < 2000 && r == 0; i++)
                r = buf_append_char(&b, 'c');
        emu_alloc_fail_after(-1);
        if (r == 0) {
            ok = true;
            assert_int_equal(b.len, 6 + 699 + 2 + 2000);
            assert_memory_equal(b.data, "start:y", 7);
        } else {
            assert_int_equal(r, -1);
            /* Whatever was appended is still a valid string. */
            if (b.data)
                assert_int_equal(strlen(b.data), b.len);
        }
        buf_cleanup(&b);
    }
    assert_true(ok);
}

/* ---- string helpers --------------------------------------------------- */

static void
test_util_str_copy_fits_and_truncates(void **state)
{
    (void)state;
    char d[6];
    assert_int_equal(str_copy(d, sizeof(d), "hello"), 0);
    assert_string_equal(d, "hello");
    assert_int_equal(str_copy(d, sizeof(d), "hello!"), -1);
    assert_string_equal(d, "hello");
    assert_int_equal(str_copy(d, sizeof(d), ""), 0);
    assert_string_equal(d, "");
    assert_int_equal(str_copy(d, 1, "x"), -1);
    assert_string_equal(d, "");
    d[0] = 'k';
    assert_int_equal(str_copy(d, 0, "x"), -1);
    assert_int_equal(d[0], 'k'); /* nothing written */
}

static void
test_util_str_ieq_n_ignores_ascii_case(void **state)
{
    (void)state;
    assert_true(str_ieq_n("MAIL", "mail", 4));
    assert_true(str_ieq_n("MaIl", "mAiL", 4));
    assert_true(str_ieq_n("abc", "xyz", 0));
    assert_false(str_ieq_n("MAIL", "MAIK", 4));
    assert_true(str_ieq_n("MAILX", "mailY", 4));
    /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ. */
    assert_false(str_ieq_n("@", "`", 1));
    assert_false(str_ieq_n("[", "{", 1));
    assert_false(str_ieq_n("\xc4", "\xe4", 1));
}

static void
test_util_str_has_prefix_ci(void **state)
{
    (void)state;
    assert_true(str_has_prefix_ci(S("FROM:<a@b>"), "from:"));
    assert_true(str_has_prefix_ci(S("from:"), "FROM:"));
    assert_false(str_has_prefix_ci(S("FROM"), "FROM:"));
    assert_false(str_has_prefix_ci(S("TO:<a>"), "FROM:"));
    /* The length bounds the view, not the NUL. */
    assert_false(str_has_prefix_ci("FROM:", 3, "FROM:"));
    assert_true(str_has_prefix_ci(S("anything"), ""));
}

static void
test_util_utf8_valid_accepts_well_formed(void **state)
{
    (void)state;
    assert_true(utf8_valid("", 0));
    assert_true(utf8_valid(S("plain ascii")));
    assert_true(utf8_valid(S("caf\xc3\xa9")));              /* U+00E9 */
    assert_true(utf8_valid(S("\xc2\x80")));                 /* U+0080 */
    assert_true(utf8_valid(S("\xdf\xbf")));                 /* U+07FF */
    assert_true(utf8_valid(S("\xe0\xa0\x80")));             /* U+0800 */
    assert_true(utf8_valid(S("\xe2\x82\xac")));             /* euro sign */
    assert_true(utf8_valid(S("\xed\x9f\xbf")));             /* U+D7FF */
    assert_true(utf8_valid(S("\xee\x80\x80")));             /* U+E000 */
    assert_true(utf8_valid(S("\xef\xbf\xbf")));             /* U+FFFF */
    assert_true(utf8_valid(S("\xf0\x90\x80\x80")));         /* U+10000 */
    assert_true(utf8_valid(S("\xf0\x9f\x98\x80")));         /* emoji */
    assert_true(utf8_valid(S("\xf4\x8f\xbf\xbf")));         /* U+10FFFF */
    assert_true(utf8_valid(S("\xe7\x94\xa8\xe6\x88\xb7"))); /* CJK */
    assert_true(utf8_valid("a\0b", 3));                     /* NUL is ASCII */
}

static void
test_util_utf8_valid_rejects_malformed(void **state)
{
    (void)state;
    assert_false(utf8_valid(S("\x80"))); /* lone continuation */
    assert_false(utf8_valid(S("\xbf")));
    assert_false(utf8_valid(S("\xc0\x80")));     /* overlong NUL */
    assert_false(utf8_valid(S("\xc1\xbf")));     /* overlong */
    assert_false(utf8_valid(S("\xe0\x80\x80"))); /* overlong 3-byte */
    assert_false(utf8_valid(S("\xe0\x9f\xbf")));
    assert_false(utf8_valid(S("\xf0\x80\x80\x80"))); /* overlong 4-byte */
    assert_false(utf8_valid(S("\xf0\x8f\xbf\xbf")));
    assert_false(utf8_valid(S("\xed\xa0\x80")));     /* surrogate D800 */
    assert_false(utf8_valid(S("\xed\xbf\xbf")));     /* surrogate DFFF */
    assert_false(utf8_valid(S("\xf4\x90\x80\x80"))); /* > U+10FFFF */
    assert_false(utf8_valid(S("\xf5\x80\x80\x80")));
    assert_false(utf8_valid(S("\xf8\x88\x80\x80\x80")));
    assert_false(utf8_valid(S("\xfe")));
    assert_false(utf8_valid(S("\xff")));
    assert_false(utf8_valid(S("\xc3"))); /* truncated */
    assert_false(utf8_valid(S("\xe2\x82")));
    assert_false(utf8_valid(S("\xf0\x9f\x98")));
    assert_false(utf8_valid(S("\xc3\x28"))); /* bad continuation */
    assert_false(utf8_valid(S("\xe2\x28\xa1")));
    assert_false(utf8_valid(S("ok\xc3\xa9then\xff")));
    /* A valid sequence cut by the length is invalid. */
    assert_false(utf8_valid("\xc3\xa9", 1));
}

static void
test_util_str_is_ascii(void **state)
{
    (void)state;
    assert_true(str_is_ascii("", 0));
    assert_true(str_is_ascii(S("hello\x7f\x01")));
    assert_false(str_is_ascii(S("caf\xc3\xa9")));
    assert_false(str_is_ascii(S("\x80")));
    assert_true(str_is_ascii("ab\xff", 2));
}

static void
escape_is(const char *in, size_t len, size_t max, const char *want)
{
    struct buf b = {0};
    assert_int_equal(str_escape(&b, in, len, max), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, want);
    assert_int_equal(b.len, strlen(want));
    buf_cleanup(&b);
}

static void
test_util_str_escape_passes_printable(void **state)
{
    (void)state;
    escape_is(S("hello world"), 100, "hello world");
    escape_is(S("caf\xc3\xa9"), 100, "caf\xc3\xa9");
    escape_is(S("\xf0\x9f\x98\x80"), 100, "\xf0\x9f\x98\x80");
    escape_is("", 0, 100, "");
}

static void
test_util_str_escape_escapes_specials(void **state)
{
    (void)state;
    escape_is(S("a\"b"), 100, "a\\\"b");
    escape_is(S("a\\b"), 100, "a\\\\b");
    escape_is(S("\r\n\t"), 100, "\\r\\n\\t");
    escape_is(S("\x01\x1f\x7f"), 100, "\\x01\\x1F\\x7F");
    escape_is("a\0b", 3, 100, "a\\x00b");
    escape_is(S("\xff\xfe"), 100, "\\xFF\\xFE");
    escape_is(S("\xc0\x80"), 100, "\\xC0\\x80");          /* overlong */
    escape_is(S("\xed\xa0\x80"), 100, "\\xED\\xA0\\x80"); /* surrogate */
    escape_is(S("\xc3"), 100, "\\xC3");                   /* truncated */
}

static void
test_util_str_escape_truncates_at_max(void **state)
{
    (void)state;
    escape_is(S("abcdef"), 3, "abc...");
    escape_is(S("abc"), 3, "abc");
    escape_is(S("abc"), 0, "...");
    /* A sequence cut by the limit is escaped byte by byte. */
    escape_is(S("a\xc3\xa9"), 2, "a\\xC3...");
}

static void
test_util_str_escape_appends_to_existing(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "x="), 0);
    assert_int_equal(str_escape(&b, S("\n"), 10), 0);
    assert_string_equal(b.data, "x=\\n");
    buf_cleanup(&b);
}

static void
test_util_str_escape_alloc_failure_loop(void **state)
{
    (void)state;
    char in[600];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (char)(i % 3 == 0 ? '\n' : 'a');
    bool ok = false;
    for (long n = 0; n < 100 && !ok; n++) {
        struct buf b = {0};
        emu_alloc_fail_after(n);
        int r = str_escape(&b, in, sizeof(in), 500);
        emu_alloc_fail_after(-1);
        if (r == 0) {
            ok = true;
            assert_int_equal(b.len, 167 * 2 + 333 + 3);
        } else {
            assert_int_equal(r, -1);
        }
        buf_cleanup(&b);
    }
    assert_true(ok);

    /* Empty input still has to produce a (NUL-only) string. */
    struct buf e = {0};
    emu_alloc_fail_after(0);
    assert_int_equal(str_escape(&e, "", 0, 10), -1);
    emu_alloc_fail_after(-1);
    assert_null(e.data);
}

/* ---- rng -------------------------------------------------------------- */

static void
test_util_rng_is_splitmix64(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 0);
    /* Reference outputs of splitmix64 seeded with 0. */
    assert_true(rng_next(&r) == 0xe220a8397b1dcdafULL);
    assert_true(rng_next(&r) == 0x6e789e6aa1b965f4ULL);
    assert_true(rng_next(&r) == 0x06c45d188009454fULL);
}

static void
test_util_rng_same_seed_same_sequence(void **state)
{
    (void)state;
    struct rng a, b, c;
    rng_seed(&a, 12345);
    rng_seed(&b, 12345);
    rng_seed(&c, 12346);
    bool differs = false;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_next(&a);
        assert_true(x == rng_next(&b));
        if (x != rng_next(&c))
            differs = true;
    }
    assert_true(differs);
}

static void
test_util_rng_unit_in_range(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 42);
    double lo = 1, hi = 0;
    for (int i = 0; i < 10000; i++) {
        double u = rng_unit(&r);
        assert_true(u >= 0.0 && u < 1.0);
        if (u < lo)
            lo = u;
        if (u > hi)
            hi = u;
    }
    assert_true(lo < 0.01);
    assert_true(hi > 0.99);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_malloc_zero_returns_pointer),
        cmocka_unit_test(test_util_calloc_zeroes_memory),
        cmocka_unit_test(test_util_realloc_keeps_contents),
        cmocka_unit_test(test_util_strdup_and_strndup_copy),
        cmocka_unit_test(test_util_alloc_fail_after_counts_successes),
        cmocka_unit_test(test_util_realloc_failure_keeps_old_block),
        cmocka_unit_test(test_util_buf_zero_initialised_is_empty),
        cmocka_unit_test(test_util_buf_append_terminates),
        cmocka_unit_test(test_util_buf_append_empty_allocates_terminator),
        cmocka_unit_test(test_util_buf_append_binary_bytes),
        cmocka_unit_test(test_util_buf_grows_over_many_appends),
        cmocka_unit_test(test_util_buf_reserve_makes_room),
        cmocka_unit_test(test_util_buf_reserve_rejects_huge_sizes),
        cmocka_unit_test(test_util_buf_printf_small_and_large),
        cmocka_unit_test(test_util_buf_printf_empty_format),
        cmocka_unit_test(test_util_buf_reset_keeps_small_allocation),
        cmocka_unit_test(test_util_buf_steal_hands_over_data),
        cmocka_unit_test(test_util_buf_append_failure_leaves_buffer_unchanged),
        cmocka_unit_test(test_util_buf_alloc_failure_loop),
        cmocka_unit_test(test_util_str_copy_fits_and_truncates),
        cmocka_unit_test(test_util_str_ieq_n_ignores_ascii_case),
        cmocka_unit_test(test_util_str_has_prefix_ci),
        cmocka_unit_test(test_util_utf8_valid_accepts_well_formed),
        cmocka_unit_test(test_util_utf8_valid_rejects_malformed),
        cmocka_unit_test(test_util_str_is_ascii),
        cmocka_unit_test(test_util_str_escape_passes_printable),
        cmocka_unit_test(test_util_str_escape_escapes_specials),
        cmocka_unit_test(test_util_str_escape_truncates_at_max),
        cmocka_unit_test(test_util_str_escape_appends_to_existing),
        cmocka_unit_test(test_util_str_escape_alloc_failure_loop),
        cmocka_unit_test(test_util_rng_is_splitmix64),
        cmocka_unit_test(test_util_rng_same_seed_same_sequence),
        cmocka_unit_test(test_util_rng_unit_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
