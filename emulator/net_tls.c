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
#include <pthread.h>
#include <stdio.h>
#include <dirent.h>
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

static struct net_tls *tls_new(const char *cert, const char *key,
                               const char *ca, int min_v, int max_v, bool alert,
                               char *err, size_t errlen);

struct net_tls *
net_tls_new(const char *cert, const char *key, const char *ca, char *err,
            size_t errlen)
{
    return tls_new(cert, key, ca, 0, 0, false, err, errlen);
}

/* Refuse every ClientHello: the client gets a handshake_failure alert. */
static int
refuse_hello(SSL *ssl, int *al, void *arg)
{
    (void)ssl;
    (void)arg;
    *al = SSL_AD_HANDSHAKE_FAILURE;
    return SSL_CLIENT_HELLO_ERROR;
}

static struct net_tls *
tls_new(const char *cert, const char *key, const char *ca, int min_v, int max_v,
        bool alert, char *err, size_t errlen)
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
    if (min_v || max_v) {
        /* Old versions need the legacy security level in OpenSSL 3. */
        if (min_v && min_v < TLS1_2_VERSION) {
            SSL_CTX_set_security_level(t->ctx, 0);
            SSL_CTX_set_cipher_list(t->ctx, "DEFAULT:@SECLEVEL=0");
        }
        if ((min_v && SSL_CTX_set_min_proto_version(t->ctx, min_v) != 1) ||
            (max_v && SSL_CTX_set_max_proto_version(t->ctx, max_v) != 1)) {
            snprintf(err, errlen, "TLS versions not supported here");
            goto fail;
        }
    }
    if (alert)
        SSL_CTX_set_client_hello_cb(t->ctx, refuse_hello, NULL);
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

/* ---- variants for scenarios ---- */

struct tls_variant {
    char cert[32];
    int min_v, max_v; /* 0: OpenSSL's default */
    struct net_tls *tls;
    struct tls_variant *next;
};

struct net_tls_cache {
    pthread_mutex_t mu;
    struct net_tls *base;
    char *cert, *key, *ca, *dir;
    struct tls_variant *list;
};

struct net_tls_cache *
net_tls_cache_new(struct net_tls *base, const char *cert, const char *key,
                  const char *ca, const char *certs_dir)
{
    struct net_tls_cache *c = emu_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->base = base;
    c->cert = emu_strdup(cert);
    c->key = emu_strdup(key);
    c->ca = ca ? emu_strdup(ca) : NULL;
    c->dir = emu_strdup(certs_dir);
    if (!c->cert || !c->key || (ca && !c->ca) || !c->dir) {
        net_tls_cache_free(c);
        return NULL;
    }
    return c;
}

void
net_tls_cache_free(struct net_tls_cache *c)
{
    if (c == NULL)
        return;
    while (c->list) {
        struct tls_variant *v = c->list;
        c->list = v->next;
        net_tls_free(v->tls);
        emu_free(v);
    }
    emu_free(c->cert);
    emu_free(c->key);
    emu_free(c->ca);
    emu_free(c->dir);
    pthread_mutex_destroy(&c->mu);
    emu_free(c);
}

static int
version_of(const char *s, size_t n)
{
    if (n == 3 && memcmp(s, "1.0", 3) == 0)
        return TLS1_VERSION;
    if (n == 3 && memcmp(s, "1.1", 3) == 0)
        return TLS1_1_VERSION;
    if (n == 3 && memcmp(s, "1.2", 3) == 0)
        return TLS1_2_VERSION;
    if (n == 3 && memcmp(s, "1.3", 3) == 0)
        return TLS1_3_VERSION;
    return -1;
}

struct net_tls *
net_tls_cache_get(struct net_tls_cache *c, const char *cert,
                  const char *versions, char *err, size_t errlen)
{
    bool alert = strcmp(cert, "alert") == 0;
    if ((cert[0] == '\0' || strcmp(cert, "default") == 0) &&
        versions[0] == '\0')
        return c->base;
    int min_v = 0, max_v = 0;
    if (versions[0]) {
        const char *dash = strchr(versions, '-');
        size_t n1 = dash ? (size_t)(dash - versions) : strlen(versions);
        min_v = version_of(versions, n1);
        max_v = dash ? version_of(dash + 1, strlen(dash + 1)) : min_v;
        if (min_v < 0 || max_v < 0 || min_v > max_v) {
            snprintf(err, errlen, "bad TLS versions '%s' (e.g. 1.0-1.1, 1.3)",
                     versions);
            return NULL;
        }
    }
    if (strlen(cert) >= sizeof(((struct tls_variant *)0)->cert)) {
        snprintf(err, errlen, "TLS certificate name '%s' too long", cert);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    for (struct tls_variant *v = c->list; v; v = v->next) {
        if (strcmp(v->cert, cert) == 0 && v->min_v == min_v &&
            v->max_v == max_v) {
            pthread_mutex_unlock(&c->mu);
            return v->tls;
        }
    }
    char cf[4200], kf[4200];
    if (cert[0] && strcmp(cert, "default") != 0 && !alert) {
        snprintf(cf, sizeof(cf), "%s/server-%s.pem", c->dir, cert);
        snprintf(kf, sizeof(kf), "%s/server-%s.key", c->dir, cert);
    } else {
        str_copy(cf, sizeof(cf), c->cert);
        str_copy(kf, sizeof(kf), c->key);
    }
    struct net_tls *t =
        tls_new(cf, kf, c->ca, min_v, max_v, alert, err, errlen);
    struct tls_variant *v = t ? emu_calloc(1, sizeof(*v)) : NULL;
    if (v == NULL) {
        if (t) {
            net_tls_free(t);
            snprintf(err, errlen, "out of memory");
        }
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    str_copy(v->cert, sizeof(v->cert), cert);
    v->min_v = min_v;
    v->max_v = max_v;
    v->tls = t;
    v->next = c->list;
    c->list = v;
    pthread_mutex_unlock(&c->mu);
    return t;
}

/* Every variant a scenario can ask for, made now: each certificate of
 * certs/ (server-NAME.pem), "alert" and the default, with every range of
 * versions. Used before dropping root, after which the keys (mode 0600)
 * could no longer be read. Returns -1 with err when one fails. */
int
net_tls_cache_preload(struct net_tls_cache *c, char *err, size_t errlen)
{
    char names[16][32];
    size_t n = 0;
    str_copy(names[n++], sizeof(names[0]), "default");
    str_copy(names[n++], sizeof(names[0]), "alert");
    DIR *d = opendir(c->dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n < 16) {
        size_t l = strlen(de->d_name);
        if (l > 11 && l - 11 < sizeof(names[0]) &&
            strncmp(de->d_name, "server-", 7) == 0 &&
            strcmp(de->d_name + l - 4, ".pem") == 0) {
            memcpy(names[n], de->d_name + 7, l - 11);
            names[n++][l - 11] = '\0';
        }
    }
    if (d)
        closedir(d);
    static const char *const vers[] = {
        "",        "1.0",     "1.1",     "1.2",     "1.3",    "1.0-1.1",
        "1.0-1.2", "1.0-1.3", "1.1-1.2", "1.1-1.3", "1.2-1.3"};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof(vers) / sizeof(vers[0]); k++)
            if (net_tls_cache_get(c, names[i], vers[k], err, errlen) == NULL &&
                strcmp(err, "TLS versions not supported here") != 0)
                return -1;
    return 0;
}
