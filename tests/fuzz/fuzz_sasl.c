/*
 * fuzz_sasl: AUTH payloads. The input is taken as base64 text (what the
 * client sends after AUTH PLAIN or a 334 prompt), decoded, and the result
 * read as PLAIN and XOAUTH2 credentials; the raw input is read as decoded
 * bytes too, so the credential parsers see arbitrary bytes even when the
 * base64 is bad. Round trips: encode then decode gives the bytes back, and
 * decoding never writes past the capacity it is given.
 */
#include <string.h>

#include "base64.h"
#include "fuzz.h"
#include "sasl.h"

static void
creds(const char *d, size_t len)
{
    struct sasl_creds c;
    if (sasl_decode_plain(d, len, &c) == 0) {
        FUZZ_ASSERT(fuzz_inside(c.authzid, c.authzid_len, d, len));
        FUZZ_ASSERT(fuzz_inside(c.user, c.user_len, d, len));
        FUZZ_ASSERT(fuzz_inside(c.secret, c.secret_len, d, len));
        FUZZ_ASSERT(c.user_len > 0);
        FUZZ_ASSERT(c.authzid_len + c.user_len + c.secret_len + 2 == len);
        FUZZ_ASSERT(memchr(c.user, '\0', c.user_len) == NULL);
        FUZZ_ASSERT(memchr(c.secret, '\0', c.secret_len) == NULL);
    }
    if (sasl_decode_xoauth2(d, len, &c) == 0) {
        FUZZ_ASSERT(fuzz_inside(c.user, c.user_len, d, len));
        FUZZ_ASSERT(fuzz_inside(c.secret, c.secret_len, d, len));
        FUZZ_ASSERT(c.user != NULL && c.secret != NULL);
        FUZZ_ASSERT(len >= 2 && d[len - 1] == '\x01' && d[len - 2] == '\x01');
        FUZZ_ASSERT(memchr(c.user, '\x01', c.user_len) == NULL);
        FUZZ_ASSERT(memchr(c.secret, '\x01', c.secret_len) == NULL);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    (void)sasl_mech_name(sasl_mech_parse(s, size));
    creds(s, size);

    /* Decode into an exact-size heap buffer so ASan sees any overrun. */
    size_t cap = BASE64_DECODED_MAX(size);
    unsigned char *dec = malloc(cap);
    FUZZ_ASSERT(dec != NULL);
    long n = base64_decode(s, size, dec, cap);
    if (n >= 0) {
        FUZZ_ASSERT((size_t)n <= cap && size % 4 == 0);
        FUZZ_ASSERT((size_t)n <= size / 4 * 3 && (size_t)n + 2 >= size / 4 * 3);
        creds((const char *)dec, (size_t)n);
        /* Re-encoding gives text that decodes to the same bytes (the
         * input may differ in unused low bits of its last quantum). */
        char *enc = malloc(BASE64_ENCODED_LEN((size_t)n) + 1);
        FUZZ_ASSERT(enc != NULL);
        size_t el = base64_encode(dec, (size_t)n, enc);
        FUZZ_ASSERT(el == size);
        unsigned char *back = malloc((size_t)n ? (size_t)n : 1);
        FUZZ_ASSERT(back != NULL);
        FUZZ_ASSERT(base64_decode(enc, el, back, (size_t)n) == n);
        FUZZ_ASSERT(n == 0 || memcmp(back, dec, (size_t)n) == 0);
        free(back);
        free(enc);
        /* One byte less room than needed must fail, not overflow. */
        if (n > 0) {
            unsigned char *tight = malloc((size_t)n - 1 ? (size_t)n - 1 : 1);
            FUZZ_ASSERT(tight != NULL);
            FUZZ_ASSERT(base64_decode(s, size, tight, (size_t)n - 1) < 0);
            free(tight);
        }
    }
    free(dec);

    /* Any bytes encode and decode back. */
    char *enc = malloc(BASE64_ENCODED_LEN(size) + 1);
    FUZZ_ASSERT(enc != NULL);
    size_t el = base64_encode(data, size, enc);
    FUZZ_ASSERT(el == BASE64_ENCODED_LEN(size) && enc[el] == '\0');
    unsigned char *back = malloc(size ? size : 1);
    FUZZ_ASSERT(back != NULL);
    FUZZ_ASSERT(base64_decode(enc, el, back, size) == (long)size);
    FUZZ_ASSERT(size == 0 || memcmp(back, data, size) == 0);
    free(back);
    free(enc);
    return 0;
}
