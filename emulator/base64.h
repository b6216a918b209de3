/*
 * base64: RFC 4648 encoding and strict decoding, for AUTH exchanges
 * (RFC 4954) and XOAUTH2. Pure; kept apart from OpenSSL so the SASL parser
 * links into its unit test and fuzzer alone.
 */
#ifndef EMU_BASE64_H
#define EMU_BASE64_H

#include <stddef.h>

/* Bytes needed to hold the decoding of `len` input characters. */
#define BASE64_DECODED_MAX(len) (((len) / 4 + 1) * 3)
#define BASE64_ENCODED_LEN(len) ((((len) + 2) / 3) * 4)

/* Decode `in` into `out` (cap bytes). Padding is required when the input is
 * not a multiple of 4 long; whitespace and stray characters are errors.
 * Returns the decoded length or -1. */
long base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);
/* Encode; `out` needs BASE64_ENCODED_LEN(len)+1 bytes; NUL-terminated.
 * Returns the encoded length. */
size_t base64_encode(const unsigned char *in, size_t len, char *out);

#endif
