/*
 * base64: small strict codec for SASL payloads. Pure.
 */
#include "base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
value_of(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long
base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t o = 0;

    if (len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + (size_t)k];
            if (c == '=') {
                /* Padding only in the last quantum, only at its end. */
                if (i + 4 != len || k < 2)
                    return -1;
                pad++;
                v[k] = 0;
                continue;
            }
            if (pad)
                return -1;
            v[k] = value_of(c);
            if (v[k] < 0)
                return -1;
        }
        unsigned n = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        int bytes = 3 - pad;
        if (o + (size_t)bytes > cap)
            return -1;
        out[o++] = (unsigned char)(n >> 16);
        if (bytes > 1)
            out[o++] = (unsigned char)(n >> 8);
        if (bytes > 2)
            out[o++] = (unsigned char)n;
    }
    return (long)o;
}

size_t
base64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned n = (unsigned)in[i] << 16;
        if (i + 1 < len)
            n |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            n |= in[i + 2];
        out[o++] = alphabet[(n >> 18) & 63];
        out[o++] = alphabet[(n >> 12) & 63];
        out[o++] = i + 1 < len ? alphabet[(n >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[n & 63] : '=';
    }
    out[o] = '\0';
    return o;
}
