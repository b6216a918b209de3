/*
 * test_reply: reply code and enhanced status code checks, reply_finish's
 * multi-line conversion and refusals, and reply_build.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "reply.h"
#include "util.h"

#define S(x) x, sizeof(x) - 1

static void
finish_is(const char *text, int code, const char *want)
{
    struct buf b = {0};
    assert_int_equal(reply_finish(&b, text, strlen(text)), code);
    assert_non_null(b.data);
    assert_string_equal(b.data, want);
    assert_int_equal(b.len, strlen(want));
    buf_cleanup(&b);
}

static void
finish_fails(const char *text, size_t len)
{
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "KEEP"), 0);
    assert_int_equal(reply_finish(&b, text, len), -1);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "KEEP");
    buf_cleanup(&b);
}

/* ---- codes ------------------------------------------------------------ */

static void
test_reply_code_valid_range(void **state)
{
    (void)state;
    assert_true(reply_code_valid(200));
    assert_true(reply_code_valid(250));
    assert_true(reply_code_valid(354));
    assert_true(reply_code_valid(421));
    assert_true(reply_code_valid(599));
    assert_false(reply_code_valid(199));
    assert_false(reply_code_valid(600));
    assert_false(reply_code_valid(0));
    assert_false(reply_code_valid(-250));
    assert_false(reply_code_valid(2500));
}

static void
test_reply_esc_valid_accepts_rfc3463(void **state)
{
    (void)state;
    static const char *good[] = {
        "2.0.0", "2.1.5",   "4.4.2",     "4.7.0",    "5.7.1",
        "5.1.1", "5.7.510", "5.999.999", "4.00.000",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(good); i++)
        assert_true(reply_esc_valid(good[i], strlen(good[i])));
}

static void
test_reply_esc_valid_rejects_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",      "2",       "2.0",    "2.0.",     ".0.0",     "3.0.0",
        "1.0.0", "6.0.0",   "25.0.0", "2.1000.0", "2.0.1000", "2.a.0",
        "2.0.a", "2..0",    "2.0..0", "2.0.0.",   "2.0.0 ",   " 2.0.0",
        "2,0,0", "2.0.0.0", "2.-1.0", "5.7.1x",   "x.7.1",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++)
        assert_false(reply_esc_valid(bad[i], strlen(bad[i])));
    /* The length bounds the view. */
    assert_true(reply_esc_valid("2.0.0 Ok", 5));
    assert_false(reply_esc_valid("2.0.0", 4));
}

/* ---- reply_finish ----------------------------------------------------- */

static void
test_reply_finish_single_line(void **state)
{
    (void)state;
    finish_is("250 2.0.0 Ok", 250, "250 2.0.0 Ok\r\n");
    finish_is("220 mx.example ESMTP", 220, "220 mx.example ESMTP\r\n");
    finish_is("554", 554, "554\r\n");
    finish_is("250 ", 250, "250 \r\n");
    /* A lone '-' on the last line becomes ' '. */
    finish_is("250-Ok", 250, "250 Ok\r\n");
}

static void
test_reply_finish_multi_line_conversion(void **state)
{
    (void)state;
    finish_is("250 a\n250 b", 250, "250-a\r\n250 b\r\n");
    finish_is("250-a\n250-b", 250, "250-a\r\n250 b\r\n");
    finish_is("250-mx.example\n250-PIPELINING\n250-SIZE 10240000\n250 "
              "SMTPUTF8",
              250,
              "250-mx.example\r\n250-PIPELINING\r\n250-SIZE "
              "10240000\r\n250 SMTPUTF8\r\n");
    finish_is("250\n250 b", 250, "250-\r\n250 b\r\n");
    finish_is("550 5.7.1 a\n550 5.7.1 b\n550 5.7.1 c", 550,
              "550-5.7.1 a\r\n550-5.7.1 b\r\n550 5.7.1 c\r\n");
}

static void
test_reply_finish_trailing_newline_ignored(void **state)
{
    (void)state;
    finish_is("250 Ok\n", 250, "250 Ok\r\n");
    finish_is("250 a\n250 b\n", 250, "250-a\r\n250 b\r\n");
    /* Only one: a second one is an empty line. */
    finish_fails(S("250 a\n\n"));
}

static void
test_reply_finish_appends(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(reply_finish(&b, S("250 one")), 250);
    assert_int_equal(reply_finish(&b, S("354 go")), 354);
    assert_string_equal(b.data, "250 one\r\n354 go\r\n");
    /* A failure leaves earlier replies alone. */
    assert_int_equal(reply_finish(&b, S("999 no")), -1);
    assert_string_equal(b.data, "250 one\r\n354 go\r\n");
    buf_cleanup(&b);
}

static void
test_reply_finish_rejects_mismatched_codes(void **state)
{
    (void)state;
    finish_fails(S("250 a\n251 b"));
    finish_fails(S("250-a\n250-b\n550 c"));
    finish_fails(S("450 a\n550 a"));
}

static void
test_reply_finish_rejects_cr_and_nul(void **state)
{
    (void)state;
    finish_fails(S("250 a\rb"));
    finish_fails(S("250 Ok\r"));
    finish_fails(S("250 Ok\r\n"));
    finish_fails(S("250 a\r\n250 b"));
    finish_fails(S("250 a\n250 b\rc"));
    finish_fails(S("250 a\0b"));
    finish_fails(S("250 a\n250 \0"));
}

static void
test_reply_finish_rejects_bad_codes(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",         "\n",        "25",
        "25 Ok",    "2500 Ok",   "250Ok",
        "199 x",    "600 x",     "650 x",
        "abc",      " 250 x",    "250_x",
        "2x0 x",    "25x x",     "250\tx",
        "250 a\nb", "250 a\n25", "250 a\n\n250 b",
        "\n250 a",  "-250 a",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++)
        finish_fails(bad[i], strlen(bad[i]));
}

static void
test_reply_finish_line_length_limit(void **state)
{
    (void)state;
    static char text[REPLY_LINE_MAX + 8];
    memcpy(text, "250 ", 4);
    memset(text + 4, 'x', sizeof(text) - 4);
    /* A line of REPLY_LINE_MAX bytes with its CRLF is allowed. */
    struct buf b = {0};
    assert_int_equal(reply_finish(&b, text, REPLY_LINE_MAX - 2), 250);
    assert_int_equal(b.len, REPLY_LINE_MAX);
    buf_cleanup(&b);
    finish_fails(text, REPLY_LINE_MAX - 1);
    finish_fails(text, REPLY_LINE_MAX + 4);
}

static void
test_reply_finish_line_count_limit(void **state)
{
    (void)state;
    struct buf text = {0};
    for (int i = 0; i < REPLY_LINES_MAX; i++)
        assert_int_equal(buf_printf(&text, "%s250 line %d", i ? "\n" : "", i),
                         0);
    struct buf b = {0};
    assert_int_equal(reply_finish(&b, text.data, text.len), 250);
    buf_cleanup(&b);
    assert_int_equal(buf_append_str(&text, "\n250 one too many"), 0);
    finish_fails(text.data, text.len);
    buf_cleanup(&text);
}

static void
test_reply_finish_alloc_failure_loop(void **state)
{
    (void)state;
    struct buf text = {0};
    for (int i = 0; i < 40; i++)
        assert_int_equal(buf_printf(&text,
                                    "%s250-extension number %d with some text",
                                    i ? "\n" : "", i),
                         0);
    bool ok = false;
    for (long n = 0; n < 100 && !ok; n++) {
        struct buf b = {0};
        assert_int_equal(buf_append_str(&b, "prev\r\n"), 0);
        emu_alloc_fail_after(n);
        int r = reply_finish(&b, text.data, text.len);
        emu_alloc_fail_after(-1);
        if (r == 250) {
            ok = true;
            assert_memory_equal(b.data, "prev\r\n250-extension number 0", 28);
        } else {
            assert_int_equal(r, -1);
            assert_int_equal(b.len, 6);
            assert_string_equal(b.data, "prev\r\n");
        }
        buf_cleanup(&b);
    }
    assert_true(ok);
    buf_cleanup(&text);
}

/* ---- reply_build ------------------------------------------------------ */

static void
build_is(int code, const char *esc, const char *lines, const char *want)
{
    struct buf b = {0};
    assert_int_equal(reply_build(&b, code, esc, lines, strlen(lines)), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, want);
    buf_cleanup(&b);
}

static void
build_fails(int code, const char *esc, const char *lines, size_t len)
{
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "KEEP"), 0);
    assert_int_equal(reply_build(&b, code, esc, lines, len), -1);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "KEEP");
    buf_cleanup(&b);
}

static void
test_reply_build_with_enhanced_code(void **state)
{
    (void)state;
    build_is(250, "2.0.0", "Ok: queued as 1234",
             "250 2.0.0 Ok: queued as 1234");
    build_is(550, "5.7.1", "a\nb", "550 5.7.1 a\n550 5.7.1 b");
    build_is(421, "4.7.0", "", "421 4.7.0");
}

static void
test_reply_build_without_enhanced_code(void **state)
{
    (void)state;
    build_is(220, NULL, "mx.example ESMTP", "220 mx.example ESMTP");
    build_is(220, "", "mx.example ESMTP", "220 mx.example ESMTP");
    build_is(250, NULL, "one\ntwo\nthree", "250 one\n250 two\n250 three");
    build_is(354, NULL, "", "354");
    /* An empty line in the middle is a bare code. */
    build_is(250, NULL, "a\n\nb", "250 a\n250\n250 b");
}

static void
test_reply_build_then_finish(void **state)
{
    (void)state;
    struct buf text = {0}, wire = {0};
    assert_int_equal(
        reply_build(&text, 452, "4.5.3", S("Too many\nrecipients")), 0);
    assert_int_equal(reply_finish(&wire, text.data, text.len), 452);
    assert_string_equal(wire.data,
                        "452-4.5.3 Too many\r\n452 4.5.3 recipients\r\n");
    buf_cleanup(&text);
    buf_cleanup(&wire);
}

static void
test_reply_build_appends(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "x"), 0);
    assert_int_equal(reply_build(&b, 250, NULL, S("a\nb")), 0);
    assert_string_equal(b.data, "x250 a\n250 b");
    buf_cleanup(&b);
}

static void
test_reply_build_rejects_bad_input(void **state)
{
    (void)state;
    build_fails(199, NULL, S("x"));
    build_fails(600, NULL, S("x"));
    build_fails(0, "2.0.0", S("x"));
    build_fails(250, "2.0", S("x"));
    build_fails(250, "9.9.9", S("x"));
    build_fails(250, "2.0.0 ", S("x"));
    build_fails(250, "2.0.0", S("a\rb"));
    build_fails(250, "2.0.0", S("ok\nbad\r"));
    build_fails(250, NULL, S("a\0b"));
    build_fails(250, NULL, S("a\nb\0"));
}

static void
test_reply_build_line_length_limit(void **state)
{
    (void)state;
    static char line[REPLY_LINE_MAX];
    memset(line, 'y', sizeof(line));
    /* The limit is on the whole line, "CODE ESC text" without CRLF, so
     * that what reply_build makes reply_finish accepts. */
    struct buf b = {0};
    size_t max = REPLY_LINE_MAX - 2 - 4; /* "250 " */
    assert_int_equal(reply_build(&b, 250, NULL, line, max), 0);
    struct buf f = {0};
    assert_int_equal(reply_finish(&f, b.data, b.len), 250);
    buf_cleanup(&f);
    buf_cleanup(&b);
    build_fails(250, NULL, line, max + 1);
    max -= 6; /* "2.0.0 " */
    assert_int_equal(reply_build(&b, 250, "2.0.0", line, max), 0);
    assert_int_equal(reply_finish(&f, b.data, b.len), 250);
    buf_cleanup(&f);
    buf_cleanup(&b);
    build_fails(250, "2.0.0", line, max + 1);
}

static void
test_reply_build_alloc_failure_loop(void **state)
{
    (void)state;
    struct buf lines = {0};
    for (int i = 0; i < 30; i++)
        assert_int_equal(
            buf_printf(&lines, "%sline %d of a longer reply", i ? "\n" : "", i),
            0);
    bool ok = false;
    for (long n = 0; n < 100 && !ok; n++) {
        struct buf b = {0};
        assert_int_equal(buf_append_str(&b, "prev"), 0);
        emu_alloc_fail_after(n);
        int r = reply_build(&b, 550, "5.7.1", lines.data, lines.len);
        emu_alloc_fail_after(-1);
        if (r == 0) {
            ok = true;
            assert_memory_equal(b.data, "prev550 5.7.1 line 0", 20);
        } else {
            assert_int_equal(r, -1);
            assert_string_equal(b.data, "prev");
            assert_int_equal(b.len, 4);
        }
        buf_cleanup(&b);
    }
    assert_true(ok);
    buf_cleanup(&lines);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_code_valid_range),
        cmocka_unit_test(test_reply_esc_valid_accepts_rfc3463),
        cmocka_unit_test(test_reply_esc_valid_rejects_malformed),
        cmocka_unit_test(test_reply_finish_single_line),
        cmocka_unit_test(test_reply_finish_multi_line_conversion),
        cmocka_unit_test(test_reply_finish_trailing_newline_ignored),
        cmocka_unit_test(test_reply_finish_appends),
        cmocka_unit_test(test_reply_finish_rejects_mismatched_codes),
        cmocka_unit_test(test_reply_finish_rejects_cr_and_nul),
        cmocka_unit_test(test_reply_finish_rejects_bad_codes),
        cmocka_unit_test(test_reply_finish_line_length_limit),
        cmocka_unit_test(test_reply_finish_line_count_limit),
        cmocka_unit_test(test_reply_finish_alloc_failure_loop),
        cmocka_unit_test(test_reply_build_with_enhanced_code),
        cmocka_unit_test(test_reply_build_without_enhanced_code),
        cmocka_unit_test(test_reply_build_then_finish),
        cmocka_unit_test(test_reply_build_appends),
        cmocka_unit_test(test_reply_build_rejects_bad_input),
        cmocka_unit_test(test_reply_build_line_length_limit),
        cmocka_unit_test(test_reply_build_alloc_failure_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
