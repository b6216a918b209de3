/*
 * test_base64: RFC 4648 section 10 test vectors both ways, binary round
 * trips, and the strict decoder's refusals (length, padding, alphabet,
 * output capacity).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base64.h"
#include "util.h"

static const struct {
    const char *plain;
    const char *enc;
} vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static long
dec(const char *s, unsigned char *out, size_t cap)
{
    return base64_decode(s, strlen(s), out, cap);
}

static void
test_base64_encode_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < EMU_ARRAY_LEN(vectors); i++) {
        char out[32];
        memset(out, 'X', sizeof(out));
        size_t n = base64_encode((const unsigned char *)vectors[i].plain,
                                 strlen(vectors[i].plain), out);
        assert_int_equal(n, strlen(vectors[i].enc));
        assert_int_equal(n, BASE64_ENCODED_LEN(strlen(vectors[i].plain)));
        assert_string_equal(out, vectors[i].enc);
    }
}

static void
test_base64_decode_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < EMU_ARRAY_LEN(vectors); i++) {
        unsigned char out[32];
        long n = dec(vectors[i].enc, out, sizeof(out));
        assert_int_equal(n, (long)strlen(vectors[i].plain));
        assert_memory_equal(out, vectors[i].plain, (size_t)n);
        assert_true((size_t)n <= BASE64_DECODED_MAX(strlen(vectors[i].enc)));
    }
}

static void
test_base64_sasl_plain_example(void **state)
{
    (void)state;
    /* RFC 4954 section 4 example: "\0tim\0tanstaaftanstaaf". */
    unsigned char out[64];
    long n = dec("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", out, sizeof(out));
    assert_int_equal(n, 21);
    assert_memory_equal(out, "\0tim\0tanstaaftanstaaf", 21);
    char enc[64];
    assert_int_equal(base64_encode(out, (size_t)n, enc), 28);
    assert_string_equal(enc, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
}

static void
test_base64_round_trips_all_byte_values(void **state)
{
    (void)state;
    unsigned char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    for (size_t len = 0; len <= sizeof(in); len++) {
        char enc[BASE64_ENCODED_LEN(256) + 1];
        unsigned char back[BASE64_DECODED_MAX(BASE64_ENCODED_LEN(256))];
        size_t n = base64_encode(in + (256 - len), len, enc);
        assert_int_equal(n, BASE64_ENCODED_LEN(len));
        assert_int_equal(strlen(enc), n);
        long m = base64_decode(enc, n, back, sizeof(back));
        assert_int_equal(m, (long)len);
        assert_memory_equal(back, in + (256 - len), len);
    }
}

static void
test_base64_decode_uses_whole_alphabet(void **state)
{
    (void)state;
    const char *all =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char out[48];
    assert_int_equal(dec(all, out, sizeof(out)), 48);
    char enc[65];
    base64_encode(out, 48, enc);
    assert_string_equal(enc, all);
    assert_int_equal(dec("////", out, sizeof(out)), 3);
    assert_int_equal(out[0], 0xff);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(out[2], 0xff);
    assert_int_equal(dec("++++", out, sizeof(out)), 3);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xef);
    assert_int_equal(out[2], 0xbe);
}

static void
test_base64_decode_rejects_bad_length(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(dec("Z", out, sizeof(out)), -1);
    assert_int_equal(dec("Zg", out, sizeof(out)), -1);
    assert_int_equal(dec("Zm8", out, sizeof(out)), -1);
    assert_int_equal(dec("Zg=", out, sizeof(out)), -1);
    assert_int_equal(dec("Zm9vY", out, sizeof(out)), -1);
    assert_int_equal(dec("Zg===", out, sizeof(out)), -1);
}

static void
test_base64_decode_rejects_bad_padding(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(dec("====", out, sizeof(out)), -1);
    assert_int_equal(dec("Z===", out, sizeof(out)), -1);
    assert_int_equal(dec("=Zg=", out, sizeof(out)), -1);
    assert_int_equal(dec("Z=g=", out, sizeof(out)), -1);
    assert_int_equal(dec("Zg=a", out, sizeof(out)), -1);
    /* Padding is only allowed in the last quantum. */
    assert_int_equal(dec("Zg==Zm9v", out, sizeof(out)), -1);
    assert_int_equal(dec("Zm8=Zm9v", out, sizeof(out)), -1);
}

static void
test_base64_decode_rejects_bad_characters(void **state)
{
    (void)state;
    static const char *bad[] = {
        "Zm9v!A==", "Zm 9",    "Zm9\n", "Zm9\r",     "Zm9v\r\nZg==",
        "Zm-_",     "Zm9\x80", "Zm.v",  "Zm9v Zg==", "\tZm9",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        unsigned char out[16];
        assert_int_equal(dec(bad[i], out, sizeof(out)), -1);
    }
    unsigned char out[16];
    assert_int_equal(base64_decode("Zm\0v", 4, out, sizeof(out)), -1);
}

static void
test_base64_decode_respects_capacity(void **state)
{
    (void)state;
    unsigned char out[6];
    memset(out, 0xaa, sizeof(out));
    assert_int_equal(dec("Zm9vYmFy", out, 6), 6);
    assert_int_equal(dec("Zm9vYmFy", out, 5), -1);
    assert_int_equal(dec("Zm9vYmE=", out, 5), 5);
    assert_int_equal(dec("Zm9vYmE=", out, 4), -1);
    assert_int_equal(dec("Zg==", out, 1), 1);
    assert_int_equal(dec("Zg==", out, 0), -1);
    assert_int_equal(dec("", out, 0), 0);
}

static void
test_base64_decode_uses_length_not_nul(void **state)
{
    (void)state;
    unsigned char out[16];
    /* Only the first quantum is in the view. */
    assert_int_equal(base64_decode("Zm9vYmFy", 4, out, sizeof(out)), 3);
    assert_memory_equal(out, "foo", 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_encode_rfc4648_vectors),
        cmocka_unit_test(test_base64_decode_rfc4648_vectors),
        cmocka_unit_test(test_base64_sasl_plain_example),
        cmocka_unit_test(test_base64_round_trips_all_byte_values),
        cmocka_unit_test(test_base64_decode_uses_whole_alphabet),
        cmocka_unit_test(test_base64_decode_rejects_bad_length),
        cmocka_unit_test(test_base64_decode_rejects_bad_padding),
        cmocka_unit_test(test_base64_decode_rejects_bad_characters),
        cmocka_unit_test(test_base64_decode_respects_capacity),
        cmocka_unit_test(test_base64_decode_uses_length_not_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
