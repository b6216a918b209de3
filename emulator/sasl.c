/*
 * sasl: credential extraction for PLAIN and XOAUTH2 payloads. Pure.
 */
#include "sasl.h"
#include "util.h"

#include <string.h>

const char *
sasl_mech_name(enum sasl_mech m)
{
    switch (m) {
    case SASL_MECH_UNKNOWN:
        return "UNKNOWN";
    case SASL_MECH_PLAIN:
        return "PLAIN";
    case SASL_MECH_LOGIN:
        return "LOGIN";
    case SASL_MECH_XOAUTH2:
        return "XOAUTH2";
    }
    return "?";
}

enum sasl_mech
sasl_mech_parse(const char *s, size_t len)
{
    if (len == 5 && str_ieq_n(s, "PLAIN", 5))
        return SASL_MECH_PLAIN;
    if (len == 5 && str_ieq_n(s, "LOGIN", 5))
        return SASL_MECH_LOGIN;
    if (len == 7 && str_ieq_n(s, "XOAUTH2", 7))
        return SASL_MECH_XOAUTH2;
    return SASL_MECH_UNKNOWN;
}

int
sasl_decode_plain(const char *d, size_t len, struct sasl_creds *out)
{
    memset(out, 0, sizeof(*out));
    const char *z1 = memchr(d, '\0', len);
    if (z1 == NULL)
        return -1;
    const char *rest = z1 + 1;
    size_t rlen = len - (size_t)(rest - d);
    const char *z2 = memchr(rest, '\0', rlen);
    if (z2 == NULL)
        return -1;
    out->authzid = d;
    out->authzid_len = (size_t)(z1 - d);
    out->user = rest;
    out->user_len = (size_t)(z2 - rest);
    out->secret = z2 + 1;
    out->secret_len = len - (size_t)(out->secret - d);
    if (out->user_len == 0 || memchr(out->secret, '\0', out->secret_len))
        return -1;
    return 0;
}

int
sasl_decode_xoauth2(const char *d, size_t len, struct sasl_creds *out)
{
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    while (i < len) {
        const char *sep = memchr(d + i, '\x01', len - i);
        if (sep == NULL)
            return -1;
        size_t n = (size_t)(sep - (d + i));
        const char *f = d + i;
        if (n == 0) {
            /* The closing ^A^A. */
            if (i + 1 != len)
                return -1;
            break;
        }
        if (n > 5 && memcmp(f, "user=", 5) == 0) {
            out->user = f + 5;
            out->user_len = n - 5;
        } else if (n > 12 && str_ieq_n(f, "auth=Bearer ", 12)) {
            out->secret = f + 12;
            out->secret_len = n - 12;
        }
        i += n + 1;
    }
    if (i >= len || out->user == NULL || out->secret == NULL)
        return -1;
    return 0;
}
