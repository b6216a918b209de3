/*
 * test_data_reader: end-of-data detection, dot-unstuffing, the Postfix 3.9
 * "normalize" treatment of bare LF (content, never an end), the bare CR and
 * NUL flags, the size limit, pipelined bytes after the end, and that any
 * split of the input gives the same result.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "data_reader.h"
#include "util.h"

#define S(x) x, sizeof(x) - 1
#define NOLIMIT UINT64_MAX

struct run {
    struct buf out;
    struct data_reader r;
    size_t used;
};

/* Feed `in` in one call. */
static void
run_once(struct run *t, const char *in, size_t len, uint64_t max)
{
    memset(t, 0, sizeof(*t));
    data_reader_init(&t->r, &t->out, max);
    t->used = data_reader_feed(&t->r, in, len);
}

/* Feed `in` cut at the given offsets (ascending); stops feeding once done,
 * like the session does. */
static void
run_split(struct run *t, const char *in, size_t len, uint64_t max,
          const size_t *cuts, size_t ncuts)
{
    memset(t, 0, sizeof(*t));
    data_reader_init(&t->r, &t->out, max);
    size_t pos = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        if (end < pos)
            continue;
        size_t n = data_reader_feed(&t->r, in + pos, end - pos);
        t->used += n;
        if (n < end - pos) {
            assert_true(data_reader_done(&t->r));
            break;
        }
        pos = end;
        if (data_reader_done(&t->r))
            break;
    }
}

static void
run_cleanup(struct run *t)
{
    buf_cleanup(&t->out);
}

static void
output_is(const struct run *t, const char *want, size_t len)
{
    assert_int_equal(t->out.len, len);
    if (len)
        assert_memory_equal(t->out.data, want, len);
}

static void
same_result(const struct run *a, const struct run *b)
{
    assert_int_equal(a->used, b->used);
    assert_int_equal(a->r.state, b->r.state);
    assert_int_equal(a->r.flags, b->r.flags);
    assert_true(a->r.size == b->r.size);
    assert_int_equal(a->r.overflow, b->r.overflow);
    assert_int_equal(a->r.prev_crlf, b->r.prev_crlf);
    assert_int_equal(a->out.len, b->out.len);
    if (a->out.len)
        assert_memory_equal(a->out.data, b->out.data, a->out.len);
}

/* ---- basics ----------------------------------------------------------- */

static void
test_data_reader_simple_message(void **state)
{
    (void)state;
    struct run t;
    const char in[] = "Subject: hi\r\n\r\nbody\r\n.\r\n";
    run_once(&t, S(in), NOLIMIT);
    assert_int_equal(t.used, sizeof(in) - 1);
    assert_true(data_reader_done(&t.r));
    assert_int_equal(t.r.state, DR_DONE);
    output_is(&t, S("Subject: hi\r\n\r\nbody\r\n"));
    assert_true(t.r.size == 21);
    assert_int_equal(t.r.flags, 0);
    assert_false(t.r.overflow);
    assert_false(t.r.nomem);
    run_cleanup(&t);
}

static void
test_data_reader_empty_message(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S(".\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    assert_int_equal(t.used, 3);
    assert_int_equal(t.out.len, 0);
    assert_true(t.r.size == 0);
    run_cleanup(&t);
}

static void
test_data_reader_not_done_without_end(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("line one\r\nline two\r\n"), NOLIMIT);
    assert_false(data_reader_done(&t.r));
    assert_int_equal(t.used, 20);
    assert_int_equal(t.r.state, DR_LINE_START);
    output_is(&t, S("line one\r\nline two\r\n"));
    /* More input continues the same message. */
    t.used += data_reader_feed(&t.r, S(".\r\n"));
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("line one\r\nline two\r\n"));
    run_cleanup(&t);
}

static void
test_data_reader_feed_nothing(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, "", 0, NOLIMIT);
    assert_int_equal(t.used, 0);
    assert_int_equal(t.r.state, DR_LINE_START);
    assert_null(t.out.data);
    run_cleanup(&t);
}

static void
test_data_reader_last_line_without_crlf_is_kept(void **state)
{
    (void)state;
    /* "abc" then the end: the CRLF before the dot belongs to the text. */
    struct run t;
    run_once(&t, S("abc\r\n.\r\n"), NOLIMIT);
    output_is(&t, S("abc\r\n"));
    run_cleanup(&t);
}

/* ---- dot-unstuffing --------------------------------------------------- */

static void
test_data_reader_unstuffs_leading_dots(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("..leading\r\n.x\r\n...\r\n..\r\na.b\r\n. \r\n.\r\n"),
             NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S(".leading\r\nx\r\n..\r\n.\r\na.b\r\n \r\n"));
    assert_int_equal(t.r.flags, 0);
    run_cleanup(&t);
}

static void
test_data_reader_dot_only_at_line_start(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("a.\r\n.\r\nafter"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("a.\r\n"));
    assert_int_equal(t.used, 7);
    run_cleanup(&t);
}

static void
test_data_reader_size_counts_unstuffed_bytes(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("..\r\n..x\r\n.\r\n"), NOLIMIT);
    output_is(&t, S(".\r\n.x\r\n"));
    assert_true(t.r.size == 7);
    run_cleanup(&t);
}

/* ---- end of data and pipelining ------------------------------------- */

static void
test_data_reader_leaves_bytes_after_end(void **state)
{
    (void)state;
    struct run t;
    const char in[] = "hello\r\n.\r\nQUIT\r\n";
    run_once(&t, S(in), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    assert_int_equal(t.used, sizeof(in) - 1 - 6);
    assert_memory_equal(in + t.used, "QUIT\r\n", 6);
    output_is(&t, S("hello\r\n"));
    /* Once done, nothing more is taken. */
    assert_int_equal(data_reader_feed(&t.r, S("MAIL FROM:<>\r\n")), 0);
    assert_int_equal(data_reader_feed(&t.r, S(".\r\n")), 0);
    output_is(&t, S("hello\r\n"));
    run_cleanup(&t);
}

static void
test_data_reader_second_end_is_not_consumed(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("x\r\n.\r\n.\r\n"), NOLIMIT);
    assert_int_equal(t.used, 6);
    output_is(&t, S("x\r\n"));
    run_cleanup(&t);
}

static void
test_data_reader_dot_cr_without_lf_is_content(void **state)
{
    (void)state;
    /* ".<CR>x" is a stuffed line holding a bare CR, not the end. */
    struct run t;
    run_once(&t, S("a\r\n.\rx\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("a\r\n\rx\r\n"));
    assert_int_equal(t.r.flags, DR_SAW_BARE_CR);
    run_cleanup(&t);

    run_once(&t, S("a\r\n.\r\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("a\r\n\r\r\n"));
    assert_int_equal(t.r.flags, DR_SAW_BARE_CR);
    run_cleanup(&t);
}

/* ---- bare LF: Postfix 3.9 normalize mode ------------------------------ */

static void
test_data_reader_bare_lf_lines_stay_content(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("one\ntwo\nthree\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("one\ntwo\nthree\r\n"));
    assert_true(t.r.flags & DR_SAW_BARE_LF);
    assert_false(t.r.flags & DR_SAW_BARE_CR);
    run_cleanup(&t);
}

static void
test_data_reader_lf_dot_lf_does_not_end(void **state)
{
    (void)state;
    struct run t;
    /* SMTP smuggling: "<LF>.<LF>" must not end the data. */
    run_once(&t, S("x\n.\nMAIL FROM:<evil@example>\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    /* The lone "." line is neither the end nor stored (Postfix). */
    output_is(&t, S("x\nMAIL FROM:<evil@example>\r\n"));
    assert_true(t.r.flags & DR_SAW_BARE_LF);
    run_cleanup(&t);

    /* Not even right at the start of the data. */
    run_once(&t, S(".\nrest\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("rest\r\n"));
    run_cleanup(&t);
}

static void
test_data_reader_lf_dot_crlf_does_not_end(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("x\n.\r\nstill\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("x\nstill\r\n"));
    assert_true(t.r.flags & DR_SAW_BARE_LF);
    run_cleanup(&t);
}

static void
test_data_reader_crlf_dot_lf_does_not_end(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("x\r\n.\nstill\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("x\r\nstill\r\n"));
    assert_true(t.r.flags & DR_SAW_BARE_LF);
    run_cleanup(&t);
}

static void
test_data_reader_only_bare_lf_never_ends(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("a\n.\n.\n\n.\n"), NOLIMIT);
    assert_false(data_reader_done(&t.r));
    assert_int_equal(t.used, 9);
    output_is(&t, S("a\n\n"));
    run_cleanup(&t);
}

static void
test_data_reader_stuffed_dot_after_bare_lf_is_content(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("x\n..\n..y\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("x\n.\n.y\r\n"));
    run_cleanup(&t);
}

/* ---- flags ------------------------------------------------------------ */

static void
test_data_reader_flags_bare_cr(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("a\rb\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("a\rb\r\n"));
    assert_int_equal(t.r.flags, DR_SAW_BARE_CR);
    run_cleanup(&t);

    run_once(&t, S("a\r\r\n.\r\n"), NOLIMIT);
    output_is(&t, S("a\r\r\n"));
    assert_int_equal(t.r.flags, DR_SAW_BARE_CR);
    run_cleanup(&t);

    /* CR then LF split by a dot is not a CRLF. */
    run_once(&t, S("a\r.\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("a\r.\r\n"));
    assert_int_equal(t.r.flags, DR_SAW_BARE_CR);
    run_cleanup(&t);
}

static void
test_data_reader_flags_nul(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("a\0b\r\n\0\r\n.\0\r\n.\r\n"), NOLIMIT);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("a\0b\r\n\0\r\n\0\r\n"));
    assert_int_equal(t.r.flags, DR_SAW_NUL);
    run_cleanup(&t);
}

static void
test_data_reader_flags_combine(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("a\nb\rc\0\r\n.\r\n"), NOLIMIT);
    assert_int_equal(t.r.flags, DR_SAW_BARE_LF | DR_SAW_BARE_CR | DR_SAW_NUL);
    run_cleanup(&t);
}

/* ---- size limit ------------------------------------------------------- */

static void
test_data_reader_overflow_keeps_counting(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("0123456789\r\nabcdef\r\n.\r\n"), 5);
    assert_true(data_reader_done(&t.r));
    assert_true(t.r.overflow);
    assert_true(t.r.size == 20);
    output_is(&t, S("01234"));
    assert_int_equal(t.used, 23);
    run_cleanup(&t);
}

static void
test_data_reader_exact_limit_is_not_overflow(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("0123\r\n.\r\n"), 6);
    assert_true(data_reader_done(&t.r));
    assert_false(t.r.overflow);
    assert_true(t.r.size == 6);
    output_is(&t, S("0123\r\n"));
    run_cleanup(&t);

    run_once(&t, S("0123\r\n.\r\n"), 5);
    assert_true(t.r.overflow);
    output_is(&t, S("0123\r"));
    run_cleanup(&t);
}

static void
test_data_reader_zero_limit_stores_nothing(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("abc\r\n.\r\n"), 0);
    assert_true(data_reader_done(&t.r));
    assert_true(t.r.overflow);
    assert_true(t.r.size == 5);
    assert_int_equal(t.out.len, 0);
    run_cleanup(&t);

    run_once(&t, S(".\r\n"), 0);
    assert_false(t.r.overflow);
    run_cleanup(&t);
}

static void
test_data_reader_overflow_across_feeds(void **state)
{
    (void)state;
    struct run t;
    memset(&t, 0, sizeof(t));
    data_reader_init(&t.r, &t.out, 1000);
    char line[100];
    memset(line, 'x', 98);
    line[98] = '\r';
    line[99] = '\n';
    for (int i = 0; i < 50; i++)
        assert_int_equal(data_reader_feed(&t.r, line, sizeof(line)), 100);
    assert_int_equal(data_reader_feed(&t.r, S(".\r\n")), 3);
    assert_true(data_reader_done(&t.r));
    assert_true(t.r.overflow);
    assert_true(t.r.size == 5000);
    assert_int_equal(t.out.len, 1000);
    run_cleanup(&t);
}

/* ---- splitting -------------------------------------------------------- */

static const char tricky[] =
    "Subject: t\r\n..a\r\n.\rb\r\nc\rd\ne\n.\nf\n.\r\n.\n\0g\r\n"
    "\r\n..\r\n.\r\nNEXT";

static void
test_data_reader_split_at_every_boundary(void **state)
{
    (void)state;
    const size_t len = sizeof(tricky) - 1;
    struct run whole;
    run_once(&whole, tricky, len, NOLIMIT);
    assert_true(data_reader_done(&whole.r));
    assert_int_equal(whole.used, len - 4);
    output_is(&whole,
              S("Subject: t\r\n.a\r\n\rb\r\nc\rd\ne\nf\n\0g\r\n\r\n.\r\n"));
    assert_int_equal(whole.r.flags,
                     DR_SAW_BARE_LF | DR_SAW_BARE_CR | DR_SAW_NUL);

    for (size_t i = 0; i <= len; i++) {
        struct run t;
        run_split(&t, tricky, len, NOLIMIT, &i, 1);
        same_result(&whole, &t);
        run_cleanup(&t);
    }
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            struct run t;
            run_split(&t, tricky, len, NOLIMIT, cuts, 2);
            same_result(&whole, &t);
            run_cleanup(&t);
        }
    }
    run_cleanup(&whole);
}

static void
test_data_reader_one_byte_at_a_time(void **state)
{
    (void)state;
    const size_t len = sizeof(tricky) - 1;
    struct run whole, t;
    run_once(&whole, tricky, len, 17);
    size_t cuts[sizeof(tricky)];
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    run_split(&t, tricky, len, 17, cuts, len);
    same_result(&whole, &t);
    assert_true(t.r.overflow);
    assert_int_equal(t.out.len, 17);
    run_cleanup(&t);
    run_cleanup(&whole);
}

static void
test_data_reader_split_end_marker(void **state)
{
    (void)state;
    /* The end line arriving in pieces: "\r", "\n.", "\r", "\n". */
    struct run t;
    memset(&t, 0, sizeof(t));
    data_reader_init(&t.r, &t.out, NOLIMIT);
    assert_int_equal(data_reader_feed(&t.r, S("body\r")), 5);
    assert_int_equal(t.r.state, DR_CR);
    assert_int_equal(data_reader_feed(&t.r, S("\n.")), 2);
    assert_int_equal(t.r.state, DR_DOT);
    assert_int_equal(data_reader_feed(&t.r, S("\r")), 1);
    assert_int_equal(t.r.state, DR_DOT_CR);
    assert_false(data_reader_done(&t.r));
    assert_int_equal(data_reader_feed(&t.r, S("\nRSET\r\n")), 1);
    assert_true(data_reader_done(&t.r));
    output_is(&t, S("body\r\n"));
    assert_int_equal(t.r.flags, 0);
    run_cleanup(&t);
}

/* ---- misc ------------------------------------------------------------- */

static void
test_data_reader_state_names(void **state)
{
    (void)state;
    assert_string_equal(data_reader_state_name(DR_LINE_START), "line_start");
    assert_string_equal(data_reader_state_name(DR_MID), "mid");
    assert_string_equal(data_reader_state_name(DR_CR), "cr");
    assert_string_equal(data_reader_state_name(DR_DOT), "dot");
    assert_string_equal(data_reader_state_name(DR_DOT_CR), "dot_cr");
    assert_string_equal(data_reader_state_name(DR_DONE), "done");
    assert_string_equal(data_reader_state_name((enum data_reader_state)42),
                        "?");
}

static void
test_data_reader_init_resets_everything(void **state)
{
    (void)state;
    struct run t;
    run_once(&t, S("a\nb\0\r\n.\r\n"), 1);
    assert_true(t.r.overflow);
    assert_true(t.r.flags != 0);
    buf_reset(&t.out, 0);
    data_reader_init(&t.r, &t.out, NOLIMIT);
    assert_int_equal(t.r.state, DR_LINE_START);
    assert_int_equal(t.r.flags, 0);
    assert_false(t.r.overflow);
    assert_false(t.r.nomem);
    assert_true(t.r.prev_crlf);
    assert_true(t.r.size == 0);
    assert_ptr_equal(t.r.out, &t.out);
    assert_int_equal(data_reader_feed(&t.r, S("ok\r\n.\r\n")), 7);
    output_is(&t, S("ok\r\n"));
    run_cleanup(&t);
}

static void
test_data_reader_alloc_failure_loop(void **state)
{
    (void)state;
    /* Large enough to need several reallocations of the output. */
    struct buf in = {0};
    for (int i = 0; i < 200; i++)
        assert_int_equal(buf_printf(&in, "..line %d of the message\r\n", i), 0);
    assert_int_equal(buf_append_str(&in, ".\r\nQUIT\r\n"), 0);
    struct run ref;
    run_once(&ref, in.data, in.len, NOLIMIT);
    assert_false(ref.r.nomem);

    bool ok = false;
    for (long n = 0; n < 100 && !ok; n++) {
        struct run t;
        emu_alloc_fail_after(n);
        run_once(&t, in.data, in.len, NOLIMIT);
        emu_alloc_fail_after(-1);
        /* The reader still finds the end and counts every byte. */
        assert_true(data_reader_done(&t.r));
        assert_int_equal(t.used, ref.used);
        assert_true(t.r.size == ref.r.size);
        if (!t.r.nomem) {
            ok = true;
            same_result(&ref, &t);
        } else {
            assert_true(t.out.len < ref.out.len);
            if (t.out.len)
                assert_memory_equal(t.out.data, ref.out.data, t.out.len);
        }
        run_cleanup(&t);
    }
    assert_true(ok);
    run_cleanup(&ref);
    buf_cleanup(&in);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_reader_simple_message),
        cmocka_unit_test(test_data_reader_empty_message),
        cmocka_unit_test(test_data_reader_not_done_without_end),
        cmocka_unit_test(test_data_reader_feed_nothing),
        cmocka_unit_test(test_data_reader_last_line_without_crlf_is_kept),
        cmocka_unit_test(test_data_reader_unstuffs_leading_dots),
        cmocka_unit_test(test_data_reader_dot_only_at_line_start),
        cmocka_unit_test(test_data_reader_size_counts_unstuffed_bytes),
        cmocka_unit_test(test_data_reader_leaves_bytes_after_end),
        cmocka_unit_test(test_data_reader_second_end_is_not_consumed),
        cmocka_unit_test(test_data_reader_dot_cr_without_lf_is_content),
        cmocka_unit_test(test_data_reader_bare_lf_lines_stay_content),
        cmocka_unit_test(test_data_reader_lf_dot_lf_does_not_end),
        cmocka_unit_test(test_data_reader_lf_dot_crlf_does_not_end),
        cmocka_unit_test(test_data_reader_crlf_dot_lf_does_not_end),
        cmocka_unit_test(test_data_reader_only_bare_lf_never_ends),
        cmocka_unit_test(test_data_reader_stuffed_dot_after_bare_lf_is_content),
        cmocka_unit_test(test_data_reader_flags_bare_cr),
        cmocka_unit_test(test_data_reader_flags_nul),
        cmocka_unit_test(test_data_reader_flags_combine),
        cmocka_unit_test(test_data_reader_overflow_keeps_counting),
        cmocka_unit_test(test_data_reader_exact_limit_is_not_overflow),
        cmocka_unit_test(test_data_reader_zero_limit_stores_nothing),
        cmocka_unit_test(test_data_reader_overflow_across_feeds),
        cmocka_unit_test(test_data_reader_split_at_every_boundary),
        cmocka_unit_test(test_data_reader_one_byte_at_a_time),
        cmocka_unit_test(test_data_reader_split_end_marker),
        cmocka_unit_test(test_data_reader_state_names),
        cmocka_unit_test(test_data_reader_init_resets_everything),
        cmocka_unit_test(test_data_reader_alloc_failure_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
