/*
 * fuzz_smtp_parse: one command line (without its CRLF) through
 * smtp_parse_command, then its arguments through every argument parser the
 * session may call on them: MAIL and RCPT paths with ESMTP parameters, a
 * bare parameter list (XCLIENT), BDAT, AUTH and xtext decoding (ENVID,
 * ORCPT, XCLIENT values). Checks that every view points inside the input
 * and that decoders stay inside their output buffers.
 */
#include <stdbool.h>
#include <string.h>

#include "cidr.h"
#include "fuzz.h"
#include "sasl.h"
#include "smtp_parse.h"
#include "util.h"

static void
check_path(const struct smtp_path *p, const char *base, size_t len)
{
    if (p->null_path)
        return;
    FUZZ_ASSERT(fuzz_inside(p->addr, p->addr_len, base, len));
    FUZZ_ASSERT(fuzz_inside(p->local, p->local_len, p->addr, p->addr_len));
    if (p->domain) {
        FUZZ_ASSERT(
            fuzz_inside(p->domain, p->domain_len, p->addr, p->addr_len));
        FUZZ_ASSERT(p->local_len + 1 + p->domain_len == p->addr_len);
    }
    FUZZ_ASSERT(p->ascii == str_is_ascii(p->addr, p->addr_len));
    if (!p->ascii)
        FUZZ_ASSERT(utf8_valid(p->addr, p->addr_len));
}

static void
check_params(const struct smtp_param *ps, size_t n, const char *base,
             size_t len)
{
    FUZZ_ASSERT(n <= SMTP_MAX_PARAMS);
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(ps[i].key_len > 0);
        FUZZ_ASSERT(fuzz_inside(ps[i].key, ps[i].key_len, base, len));
        if (ps[i].val)
            FUZZ_ASSERT(fuzz_inside(ps[i].val, ps[i].val_len, base, len));
        for (size_t k = 0; k < ps[i].key_len; k++)
            FUZZ_ASSERT(ps[i].key[k] != ' ' && ps[i].key[k] != '=');
    }
}

/* xtext into buffers of several sizes: the result always fits, is
 * NUL-terminated, holds no NUL and is never longer than the input. */
static void
check_xtext(const char *s, size_t len)
{
    static const size_t caps[] = {0, 1, 2, 8, 512, 1024};
    char out[1024];
    long full = -2;
    for (size_t i = 0; i < EMU_ARRAY_LEN(caps); i++) {
        memset(out, 'Z', sizeof(out));
        long r = smtp_xtext_decode(s, len, out, caps[i]);
        if (r < 0)
            continue;
        FUZZ_ASSERT((size_t)r < caps[i]);
        FUZZ_ASSERT((size_t)r <= len);
        FUZZ_ASSERT(out[r] == '\0');
        FUZZ_ASSERT(memchr(out, '\0', (size_t)r) == NULL);
        if (full >= 0)
            FUZZ_ASSERT(r == full); /* a bigger buffer never changes it */
        full = r;
    }
}

/* What proceed_xclient does with each attribute, minus the session. */
static void
xclient_attrs(const char *args, size_t len)
{
    struct smtp_param ps[SMTP_MAX_PARAMS];
    size_t n = 0;
    if (smtp_parse_params(args, len, ps, SMTP_MAX_PARAMS, &n) != PARSE_OK)
        return;
    check_params(ps, n, args, len);
    for (size_t i = 0; i < n; i++) {
        char v[512];
        if (ps[i].val == NULL || ps[i].val_len == 0 || ps[i].val_len > 255)
            continue;
        if (smtp_xtext_decode(ps[i].val, ps[i].val_len, v, sizeof(v)) < 0) {
            memcpy(v, ps[i].val, ps[i].val_len);
            v[ps[i].val_len] = '\0';
        }
        const char *a = v;
        if (str_has_prefix_ci(a, strlen(a), "IPV6:"))
            a += 5;
        struct ip_addr ip;
        if (ip_parse(a, strlen(a), &ip) == 0)
            FUZZ_ASSERT(ip.family == 4 || ip.family == 6);
        uint64_t u;
        (void)smtp_parse_u64(v, strlen(v), &u);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct smtp_command cmd;

    enum smtp_parse_result r = smtp_parse_command(line, size, &cmd);
    if (r == PARSE_EMPTY)
        return 0;
    FUZZ_ASSERT(r == PARSE_OK);
    (void)smtp_verb_name(cmd.verb);
    FUZZ_ASSERT(cmd.verb_len > 0);
    FUZZ_ASSERT(fuzz_inside(cmd.verb_str, cmd.verb_len, line, size));
    FUZZ_ASSERT(fuzz_inside(cmd.args, cmd.args_len, line, size));
    FUZZ_ASSERT(cmd.args >= cmd.verb_str + cmd.verb_len);

    /* Every argument parser on the arguments, whatever the verb: the
     * session picks one by verb, the fuzzer should not need to. */
    const char *args = cmd.args;
    size_t alen = cmd.args_len;
    struct smtp_envelope_args env;
    r = smtp_parse_mail(args, alen, &env);
    (void)smtp_parse_result_name(r);
    if (r == PARSE_OK) {
        check_path(&env.path, args, alen);
        check_params(env.params, env.n_params, args, alen);
        for (size_t i = 0; i < env.n_params; i++)
            if (env.params[i].val)
                check_xtext(env.params[i].val, env.params[i].val_len);
    }
    r = smtp_parse_rcpt(args, alen, &env);
    if (r == PARSE_OK) {
        FUZZ_ASSERT(!env.path.null_path);
        check_path(&env.path, args, alen);
        check_params(env.params, env.n_params, args, alen);
    }

    struct smtp_param ps[SMTP_MAX_PARAMS];
    size_t n = 0;
    if (smtp_parse_params(args, alen, ps, SMTP_MAX_PARAMS, &n) == PARSE_OK)
        check_params(ps, n, args, alen);
    xclient_attrs(args, alen);

    uint64_t bsize;
    bool last;
    if (smtp_parse_bdat(args, alen, &bsize, &last) == PARSE_OK)
        FUZZ_ASSERT(alen > 0);

    const char *mech, *initial;
    size_t mech_len, initial_len;
    if (smtp_parse_auth(args, alen, &mech, &mech_len, &initial, &initial_len) ==
        PARSE_OK) {
        FUZZ_ASSERT(mech_len > 0);
        FUZZ_ASSERT(fuzz_inside(mech, mech_len, args, alen));
        if (initial)
            FUZZ_ASSERT(fuzz_inside(initial, initial_len, args, alen));
        (void)sasl_mech_parse(mech, mech_len);
    }

    check_xtext(args, alen);
    check_xtext(line, size);
    uint64_t u;
    if (smtp_parse_u64(line, size, &u) == 0)
        FUZZ_ASSERT(size > 0 && size <= 20);
    return 0;
}
