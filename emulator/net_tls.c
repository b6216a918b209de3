/*
 * net_tls: the server's OpenSSL context (certificate, key, client-CA) and the
 * description of a finished handshake (version, cipher, the client
 * certificate's subject, SANs, issuer and verification result). A client
 * certificate is requested but never required: the verify callback accepts
 * everything and the result is recorded, so scenarios decide what an
 * unverified certificate means. Part of the net module.
 */
#include "net.h"
#include "net_int.h"
#include "util.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

struct net_tls {
    SSL_CTX *ctx;
};

static int
accept_any(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

static void
ssl_error(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(err, errlen, "%s '%s': %s", what, file, buf[0] ? buf : "failed");
}

struct net_tls *
net_tls_new(const char *cert, const char *key, const char *ca, char *err,
            size_t errlen)
{
    struct net_tls *t = emu_calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        goto fail;
    }
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
        ssl_error(err, errlen, "cannot load TLS certificate", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) ==
            X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            snprintf(err, errlen,
                     "TLS key '%s' does not match certificate '%s'", key, cert);
        } else {
            ssl_error(err, errlen, "cannot load TLS key", key);
        }
        goto fail;
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "TLS key '%s' does not match certificate '%s'",
                 key, cert);
        goto fail;
    }
    if (ca) {
        if (SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1) {
            ssl_error(err, errlen, "cannot load TLS CA", ca);
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (names == NULL) {
            ssl_error(err, errlen, "cannot read CA names from", ca);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(t->ctx, names);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, accept_any);
    }
    /* Needed for session resumption once peer verification is on. */
    static const unsigned char sid[] = "smtp-emulator";
    SSL_CTX_set_session_id_context(t->ctx, sid, sizeof(sid) - 1);
    return t;
fail:
    net_tls_free(t);
    return NULL;
}

void
net_tls_free(struct net_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    emu_free(t);
}

SSL *
net_tls_ssl_new(struct net_tls *t)
{
    return SSL_new(t->ctx);
}

static void
name_text(X509_NAME *name, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int n = BIO_read(b, out, (int)cap - 1);
    out[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

static void
append_san(char *out, size_t cap, const char *prefix, const char *v,
           size_t vlen)
{
    size_t len = strlen(out);
    int w = snprintf(out + len, cap - len, "%s%s%.*s", len ? "," : "", prefix,
                     (int)vlen, v);
    if (w < 0 || (size_t)w >= cap - len)
        out[len] = '\0'; /* drop an entry that does not fit */
}

static void
sans_text(X509 *cert, char *out, size_t cap)
{
    out[0] = '\0';
    GENERAL_NAMES *gens =
        X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (gens == NULL)
        return;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS || g->type == GEN_EMAIL) {
            const ASN1_IA5STRING *s = g->d.ia5;
            append_san(out, cap, g->type == GEN_DNS ? "DNS:" : "email:",
                       (const char *)ASN1_STRING_get0_data(s),
                       (size_t)ASN1_STRING_length(s));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = g->d.ip;
            struct ip_addr a;
            char tmp[IP_STR_MAX];
            memset(&a, 0, sizeof(a));
            int len = ASN1_STRING_length(s);
            if (len != 4 && len != 16)
                continue;
            a.family = len == 4 ? 4 : 6;
            memcpy(a.b, ASN1_STRING_get0_data(s), (size_t)len);
            ip_format(&a, tmp, sizeof(tmp));
            append_san(out, cap, "IP:", tmp, strlen(tmp));
        }
    }
    GENERAL_NAMES_free(gens);
}

void
net_tls_describe(SSL *ssl, struct net_tls_info *out)
{
    memset(out, 0, sizeof(*out));
    str_copy(out->version, sizeof(out->version), SSL_get_version(ssl));
    const char *cipher = SSL_get_cipher_name(ssl);
    str_copy(out->cipher, sizeof(out->cipher), cipher ? cipher : "");
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL)
        return;
    out->client_cert = true;
    long vr = SSL_get_verify_result(ssl);
    out->verified = vr == X509_V_OK;
    if (!out->verified)
        str_copy(out->verify_error, sizeof(out->verify_error),
                 X509_verify_cert_error_string(vr));
    name_text(X509_get_subject_name(cert), out->subject, sizeof(out->subject));
    name_text(X509_get_issuer_name(cert), out->issuer, sizeof(out->issuer));
    sans_text(cert, out->sans, sizeof(out->sans));
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
        strftime(out->not_after, sizeof(out->not_after), "%Y-%m-%dT%H:%M:%SZ",
                 &tm);
    X509_free(cert);
}
