/*
 * test_sasl: mechanism names, PLAIN (RFC 4616) and XOAUTH2 payload
 * decoding, valid and malformed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base64.h"
#include "sasl.h"
#include "util.h"

#define S(x) x, sizeof(x) - 1

static void
view_is(const char *p, size_t n, const char *want)
{
    assert_non_null(p);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

static void
test_sasl_mech_parse_is_case_insensitive(void **state)
{
    (void)state;
    assert_int_equal(sasl_mech_parse(S("PLAIN")), SASL_MECH_PLAIN);
    assert_int_equal(sasl_mech_parse(S("plain")), SASL_MECH_PLAIN);
    assert_int_equal(sasl_mech_parse(S("Login")), SASL_MECH_LOGIN);
    assert_int_equal(sasl_mech_parse(S("XOAUTH2")), SASL_MECH_XOAUTH2);
    assert_int_equal(sasl_mech_parse(S("xoauth2")), SASL_MECH_XOAUTH2);
}

static void
test_sasl_mech_parse_rejects_unknown(void **state)
{
    (void)state;
    assert_int_equal(sasl_mech_parse(S("")), SASL_MECH_UNKNOWN);
    assert_int_equal(sasl_mech_parse(S("PLAINX")), SASL_MECH_UNKNOWN);
    assert_int_equal(sasl_mech_parse(S("PLAI")), SASL_MECH_UNKNOWN);
    assert_int_equal(sasl_mech_parse(S("CRAM-MD5")), SASL_MECH_UNKNOWN);
    assert_int_equal(sasl_mech_parse(S("XOAUTH")), SASL_MECH_UNKNOWN);
    assert_int_equal(sasl_mech_parse(S("OAUTHBEARER")), SASL_MECH_UNKNOWN);
    assert_int_equal(sasl_mech_parse(S("PLAIN\0")), SASL_MECH_UNKNOWN);
    /* Length, not NUL, bounds the name. */
    assert_int_equal(sasl_mech_parse("PLAINTEXT", 5), SASL_MECH_PLAIN);
}

static void
test_sasl_mech_names(void **state)
{
    (void)state;
    assert_string_equal(sasl_mech_name(SASL_MECH_UNKNOWN), "UNKNOWN");
    assert_string_equal(sasl_mech_name(SASL_MECH_PLAIN), "PLAIN");
    assert_string_equal(sasl_mech_name(SASL_MECH_LOGIN), "LOGIN");
    assert_string_equal(sasl_mech_name(SASL_MECH_XOAUTH2), "XOAUTH2");
    assert_string_equal(sasl_mech_name((enum sasl_mech)99), "?");
}

/* ---- PLAIN ------------------------------------------------------------ */

static void
test_sasl_plain_without_authzid(void **state)
{
    (void)state;
    struct sasl_creds c;
    const char d[] = "\0user@example.com\0secret";
    assert_int_equal(sasl_decode_plain(d, sizeof(d) - 1, &c), 0);
    assert_non_null(c.authzid);
    assert_int_equal(c.authzid_len, 0);
    view_is(c.user, c.user_len, "user@example.com");
    view_is(c.secret, c.secret_len, "secret");
    /* Views point into the input. */
    assert_ptr_equal(c.user, d + 1);
}

static void
test_sasl_plain_with_authzid(void **state)
{
    (void)state;
    struct sasl_creds c;
    assert_int_equal(sasl_decode_plain(S("admin\0tim\0tanstaaf"), &c), 0);
    view_is(c.authzid, c.authzid_len, "admin");
    view_is(c.user, c.user_len, "tim");
    view_is(c.secret, c.secret_len, "tanstaaf");
}

static void
test_sasl_plain_from_base64(void **state)
{
    (void)state;
    /* RFC 4954 section 4 example. */
    const char *b64 = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm";
    char raw[64];
    long n = base64_decode(b64, strlen(b64), (unsigned char *)raw, sizeof(raw));
    assert_true(n > 0);
    struct sasl_creds c;
    assert_int_equal(sasl_decode_plain(raw, (size_t)n, &c), 0);
    assert_int_equal(c.authzid_len, 0);
    view_is(c.user, c.user_len, "tim");
    view_is(c.secret, c.secret_len, "tanstaaftanstaaf");
}

static void
test_sasl_plain_utf8_credentials(void **state)
{
    (void)state;
    struct sasl_creds c;
    assert_int_equal(
        sasl_decode_plain(S("\0J\xc3\xbcrgen\0p\xc3\xa4ss w\xc3\xb6rd"), &c),
        0);
    view_is(c.user, c.user_len, "J\xc3\xbcrgen");
    view_is(c.secret, c.secret_len, "p\xc3\xa4ss w\xc3\xb6rd");
}

static void
test_sasl_plain_rejects_missing_nuls(void **state)
{
    (void)state;
    struct sasl_creds c;
    assert_int_equal(sasl_decode_plain(S("userpass"), &c), -1);
    assert_int_equal(sasl_decode_plain(S("user\0pass"), &c), -1);
    assert_int_equal(sasl_decode_plain(S("\0userpass"), &c), -1);
    assert_int_equal(sasl_decode_plain("", 0, &c), -1);
    assert_int_equal(sasl_decode_plain(S("\0"), &c), -1);
    /* The NULs must be inside the given length. */
    assert_int_equal(sasl_decode_plain("\0user\0pass", 5, &c), -1);
}

static void
test_sasl_plain_rejects_empty_user(void **state)
{
    (void)state;
    struct sasl_creds c;
    assert_int_equal(sasl_decode_plain(S("\0\0pass"), &c), -1);
    assert_int_equal(sasl_decode_plain(S("authz\0\0pass"), &c), -1);
    assert_int_equal(sasl_decode_plain(S("\0\0"), &c), -1);
}

static void
test_sasl_plain_rejects_extra_nul(void **state)
{
    (void)state;
    struct sasl_creds c;
    assert_int_equal(sasl_decode_plain(S("\0user\0pa\0ss"), &c), -1);
    assert_int_equal(sasl_decode_plain(S("a\0user\0pass\0"), &c), -1);
}

/* ---- XOAUTH2 ---------------------------------------------------------- */

static void
test_sasl_xoauth2_valid(void **state)
{
    (void)state;
    struct sasl_creds c;
    const char d[] = "user=someuser@example.com\x01"
                     "auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
                     "\x01\x01";
    assert_int_equal(sasl_decode_xoauth2(d, sizeof(d) - 1, &c), 0);
    view_is(c.user, c.user_len, "someuser@example.com");
    view_is(c.secret, c.secret_len,
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
    assert_null(c.authzid);
    assert_int_equal(c.authzid_len, 0);
}

static void
test_sasl_xoauth2_from_base64(void **state)
{
    (void)state;
    /* Google's documented example. */
    const char *b64 = "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YT"
                      "I5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0"
                      "Q2cBAQ==";
    char raw[256];
    long n = base64_decode(b64, strlen(b64), (unsigned char *)raw, sizeof(raw));
    assert_true(n > 0);
    struct sasl_creds c;
    assert_int_equal(sasl_decode_xoauth2(raw, (size_t)n, &c), 0);
    view_is(c.user, c.user_len, "someuser@example.com");
    view_is(c.secret, c.secret_len,
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
}

static void
test_sasl_xoauth2_field_order_and_extras(void **state)
{
    (void)state;
    struct sasl_creds c;
    assert_int_equal(
        sasl_decode_xoauth2(S("auth=Bearer tok\x01host=mx.example\x01"
                              "user=u@x\x01\x01"),
                            &c),
        0);
    view_is(c.user, c.user_len, "u@x");
    view_is(c.secret, c.secret_len, "tok");
    /* The scheme name is case-insensitive. */
    assert_int_equal(sasl_decode_xoauth2(S("user=u\x01"
                                           "auth=bearer t\x01\x01"),
                                         &c),
                     0);
    view_is(c.secret, c.secret_len, "t");
}

static void
test_sasl_xoauth2_rejects_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *d;
        size_t len;
    } bad[] = {
        {S("")},
        {S("\x01")},
        {S("\x01\x01")},
        /* no closing ^A^A */
        {S("user=u\x01"
           "auth=Bearer t")},
        {S("user=u\x01"
           "auth=Bearer t\x01")},
        /* missing fields */
        {S("auth=Bearer t\x01\x01")},
        {S("user=u\x01\x01")},
        /* empty values */
        {S("user=\x01"
           "auth=Bearer t\x01\x01")},
        {S("user=u\x01"
           "auth=Bearer \x01\x01")},
        /* not a bearer token */
        {S("user=u\x01"
           "auth=Basic dTpw\x01\x01")},
        {S("user=u\x01"
           "auth=Bearert\x01\x01")},
        /* bytes after the end */
        {S("user=u\x01"
           "auth=Bearer t\x01\x01junk")},
        {S("user=u\x01"
           "auth=Bearer t\x01\x01\x01")},
        /* no separators at all */
        {S("user=u auth=Bearer t")},
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct sasl_creds c;
        assert_int_equal(sasl_decode_xoauth2(bad[i].d, bad[i].len, &c), -1);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sasl_mech_parse_is_case_insensitive),
        cmocka_unit_test(test_sasl_mech_parse_rejects_unknown),
        cmocka_unit_test(test_sasl_mech_names),
        cmocka_unit_test(test_sasl_plain_without_authzid),
        cmocka_unit_test(test_sasl_plain_with_authzid),
        cmocka_unit_test(test_sasl_plain_from_base64),
        cmocka_unit_test(test_sasl_plain_utf8_credentials),
        cmocka_unit_test(test_sasl_plain_rejects_missing_nuls),
        cmocka_unit_test(test_sasl_plain_rejects_empty_user),
        cmocka_unit_test(test_sasl_plain_rejects_extra_nul),
        cmocka_unit_test(test_sasl_xoauth2_valid),
        cmocka_unit_test(test_sasl_xoauth2_from_base64),
        cmocka_unit_test(test_sasl_xoauth2_field_order_and_extras),
        cmocka_unit_test(test_sasl_xoauth2_rejects_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
