/*
 * sasl: decoding of the AUTH mechanisms the emulator offers: PLAIN
 * (RFC 4616), LOGIN (draft-murchison-sasl-login) and XOAUTH2 (Google's
 * format). Pure: it takes decoded base64 bytes and returns views into
 * them. The exchange itself (334 prompts, cancel with "*") is driven by
 * smtp_session.
 */
#ifndef EMU_SASL_H
#define EMU_SASL_H

#include <stddef.h>

enum sasl_mech {
    SASL_MECH_UNKNOWN,
    SASL_MECH_PLAIN,
    SASL_MECH_LOGIN,
    SASL_MECH_XOAUTH2,
};

const char *sasl_mech_name(enum sasl_mech m);
enum sasl_mech sasl_mech_parse(const char *s, size_t len);

struct sasl_creds {
    const char *authzid; /* PLAIN only; may be empty */
    size_t authzid_len;
    const char *user;
    size_t user_len;
    const char *secret; /* password, or the bearer token for XOAUTH2 */
    size_t secret_len;
};

/* "authzid NUL authcid NUL passwd"; -1 when malformed. */
int sasl_decode_plain(const char *d, size_t len, struct sasl_creds *out);
/* "user=U ^A auth=Bearer T ^A ^A"; -1 when malformed. */
int sasl_decode_xoauth2(const char *d, size_t len, struct sasl_creds *out);

#endif
