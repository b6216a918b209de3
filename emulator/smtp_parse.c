/*
 * smtp_parse: command-line and envelope parsing. Pure: every result is a
 * view into the caller's bytes. The accepted syntax follows what Postfix
 * smtpd takes by default (a space after "FROM:", a path without angle
 * brackets, a source route that is ignored) rather than the strictest reading
 * of RFC 5321, because clients under test rely on that leniency.
 */
#include "smtp_parse.h"
#include "util.h"

#include <string.h>

const char *
smtp_verb_name(enum smtp_verb v)
{
    switch (v) {
    case SMTP_VERB_UNKNOWN:
        return "UNKNOWN";
    case SMTP_VERB_HELO:
        return "HELO";
    case SMTP_VERB_EHLO:
        return "EHLO";
    case SMTP_VERB_MAIL:
        return "MAIL";
    case SMTP_VERB_RCPT:
        return "RCPT";
    case SMTP_VERB_DATA:
        return "DATA";
    case SMTP_VERB_BDAT:
        return "BDAT";
    case SMTP_VERB_RSET:
        return "RSET";
    case SMTP_VERB_NOOP:
        return "NOOP";
    case SMTP_VERB_QUIT:
        return "QUIT";
    case SMTP_VERB_VRFY:
        return "VRFY";
    case SMTP_VERB_HELP:
        return "HELP";
    case SMTP_VERB_STARTTLS:
        return "STARTTLS";
    case SMTP_VERB_AUTH:
        return "AUTH";
    case SMTP_VERB_XCLIENT:
        return "XCLIENT";
    case SMTP_VERB_FORBIDDEN:
        return "FORBIDDEN";
    }
    return "?";
}

const char *
smtp_parse_result_name(enum smtp_parse_result r)
{
    switch (r) {
    case PARSE_OK:
        return "PARSE_OK";
    case PARSE_EMPTY:
        return "PARSE_EMPTY";
    case PARSE_SYNTAX:
        return "PARSE_SYNTAX";
    case PARSE_BAD_ADDRESS:
        return "PARSE_BAD_ADDRESS";
    case PARSE_TOO_MANY:
        return "PARSE_TOO_MANY";
    }
    return "?";
}

static bool
is_sp(char c)
{
    return c == ' ' || c == '\t';
}

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_VERB_HELO},
    {"EHLO", SMTP_VERB_EHLO},
    {"MAIL", SMTP_VERB_MAIL},
    {"RCPT", SMTP_VERB_RCPT},
    {"DATA", SMTP_VERB_DATA},
    {"BDAT", SMTP_VERB_BDAT},
    {"RSET", SMTP_VERB_RSET},
    {"NOOP", SMTP_VERB_NOOP},
    {"QUIT", SMTP_VERB_QUIT},
    {"VRFY", SMTP_VERB_VRFY},
    {"HELP", SMTP_VERB_HELP},
    {"STARTTLS", SMTP_VERB_STARTTLS},
    {"AUTH", SMTP_VERB_AUTH},
    {"XCLIENT", SMTP_VERB_XCLIENT},
    /* Postfix's default smtpd_forbidden_commands. */
    {"CONNECT", SMTP_VERB_FORBIDDEN},
    {"GET", SMTP_VERB_FORBIDDEN},
    {"POST", SMTP_VERB_FORBIDDEN},
};

enum smtp_parse_result
smtp_parse_command(const char *line, size_t len, struct smtp_command *out)
{
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    while (i < len && is_sp(line[i]))
        i++;
    if (i == len)
        return PARSE_EMPTY;
    size_t vstart = i;
    while (i < len && !is_sp(line[i]))
        i++;
    out->verb_str = line + vstart;
    out->verb_len = i - vstart;
    while (i < len && is_sp(line[i]))
        i++;
    size_t end = len;
    while (end > i && is_sp(line[end - 1]))
        end--;
    out->args = line + i;
    out->args_len = end - i;
    out->verb = SMTP_VERB_UNKNOWN;
    for (size_t k = 0; k < EMU_ARRAY_LEN(verbs); k++) {
        size_t n = strlen(verbs[k].name);
        if (n == out->verb_len && str_ieq_n(out->verb_str, verbs[k].name, n)) {
            out->verb = verbs[k].verb;
            break;
        }
    }
    /* A header line sent as a command ("Subject: hi", "Subject:hi") marks
     * a client that is not speaking SMTP; Postfix's is_header() treats it
     * like GET. */
    if (out->verb == SMTP_VERB_UNKNOWN) {
        const char *colon = memchr(out->verb_str, ':', out->verb_len);
        bool header = colon != NULL && colon > out->verb_str;
        for (const char *p = out->verb_str; header && p < colon; p++) {
            /* RFC 5322 ftext: printable US-ASCII except ':'. */
            unsigned char c = (unsigned char)*p;
            if (c < 33 || c > 126)
                header = false;
        }
        if (header)
            out->verb = SMTP_VERB_FORBIDDEN;
    }
    return PARSE_OK;
}

static bool
is_atext(unsigned char c)
{
    if (c >= 0x80)
        return true; /* UTF-8, judged by the caller (RFC 6531) */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return true;
    return strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL && c != '\0';
}

static bool
is_domain_char(unsigned char c)
{
    if (c >= 0x80)
        return true; /* U-labels under SMTPUTF8 */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

enum smtp_parse_result
smtp_parse_mailbox(const char *s, size_t len, struct smtp_path *out)
{
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    out->addr = s;
    out->addr_len = len;
    out->ascii = str_is_ascii(s, len);
    if (len == 0 || len > 512)
        return PARSE_BAD_ADDRESS;
    if (!out->ascii && !utf8_valid(s, len))
        return PARSE_BAD_ADDRESS;
    /* Local part: a quoted string or atoms. */
    if (s[0] == '"') {
        i = 1;
        while (i < len && s[i] != '"') {
            unsigned char c = (unsigned char)s[i];
            if (c == '\\') {
                i++;
                if (i == len)
                    return PARSE_BAD_ADDRESS;
                c = (unsigned char)s[i];
            }
            if (c < 0x20 || c == 0x7f)
                return PARSE_BAD_ADDRESS;
            i++;
        }
        if (i == len)
            return PARSE_BAD_ADDRESS;
        i++; /* closing quote */
    } else {
        while (i < len && s[i] != '@') {
            if (!is_atext((unsigned char)s[i]))
                return PARSE_BAD_ADDRESS;
            i++;
        }
    }
    out->local = s;
    out->local_len = i;
    if (i == len) {
        /* "postmaster" and other bare local parts: RFC 5321 4.5.1 asks
         * that RCPT TO:<postmaster> work; Postfix appends $myorigin. */
        return i > 0 ? PARSE_OK : PARSE_BAD_ADDRESS;
    }
    if (s[i] != '@' || i == 0)
        return PARSE_BAD_ADDRESS;
    i++;
    out->domain = s + i;
    out->domain_len = len - i;
    if (out->domain_len == 0)
        return PARSE_BAD_ADDRESS;
    if (s[i] == '[') {
        /* Address literal: [192.0.2.1] or [IPv6:...]; checked loosely. */
        if (s[len - 1] != ']' || out->domain_len < 3)
            return PARSE_BAD_ADDRESS;
        for (size_t k = i + 1; k + 1 < len; k++) {
            unsigned char c = (unsigned char)s[k];
            if (c <= ' ' || c == '[' || c == ']' || c == '\\' || c >= 0x7f)
                return PARSE_BAD_ADDRESS;
        }
        return PARSE_OK;
    }
    if (s[i] == '.')
        return PARSE_BAD_ADDRESS;
    for (size_t k = i; k < len; k++) {
        if (!is_domain_char((unsigned char)s[k]))
            return PARSE_BAD_ADDRESS;
        if (s[k] == '.' && k + 1 < len && s[k + 1] == '.')
            return PARSE_BAD_ADDRESS;
    }
    return PARSE_OK;
}

enum smtp_parse_result
smtp_parse_params(const char *s, size_t len, struct smtp_param *params,
                  size_t max, size_t *n)
{
    size_t i = 0;
    *n = 0;
    while (i < len) {
        while (i < len && is_sp(s[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_sp(s[i]))
            i++;
        if (*n == max)
            return PARSE_TOO_MANY;
        struct smtp_param *p = &params[(*n)++];
        const char *eq = memchr(s + start, '=', i - start);
        p->key = s + start;
        if (eq) {
            p->key_len = (size_t)(eq - (s + start));
            p->val = eq + 1;
            p->val_len = i - start - p->key_len - 1;
        } else {
            p->key_len = i - start;
            p->val = NULL;
            p->val_len = 0;
        }
        if (p->key_len == 0)
            return PARSE_SYNTAX;
        for (size_t k = 0; k < p->key_len; k++) {
            char c = p->key[k];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-'))
                return PARSE_SYNTAX;
        }
    }
    return PARSE_OK;
}

/* Shared body of MAIL and RCPT: `keyword` is "FROM:" or "TO:". */
static enum smtp_parse_result
parse_envelope(const char *args, size_t len, const char *keyword,
               bool allow_null, struct smtp_envelope_args *out)
{
    memset(out, 0, sizeof(*out));
    if (!str_has_prefix_ci(args, len, keyword))
        return PARSE_SYNTAX;
    size_t i = strlen(keyword);
    while (i < len && is_sp(args[i]))
        i++;
    if (i == len)
        return PARSE_SYNTAX;
    size_t path_end;
    const char *a;
    size_t alen;
    if (args[i] == '<') {
        /* The path ends at the matching '>' outside a quoted string. */
        size_t k = i + 1;
        bool quoted = false;
        while (k < len) {
            char c = args[k];
            if (quoted && c == '\\' && k + 1 < len) {
                k += 2;
                continue;
            }
            if (c == '"')
                quoted = !quoted;
            else if (!quoted && c == '>')
                break;
            else if (!quoted && (c == '<' || is_sp(c)))
                return PARSE_BAD_ADDRESS;
            k++;
        }
        if (k == len)
            return PARSE_BAD_ADDRESS;
        a = args + i + 1;
        alen = k - i - 1;
        path_end = k + 1;
        out->path.had_brackets = true;
        if (path_end < len && !is_sp(args[path_end]))
            return PARSE_BAD_ADDRESS;
    } else {
        size_t k = i;
        while (k < len && !is_sp(args[k]))
            k++;
        a = args + i;
        alen = k - i;
        path_end = k;
        if (memchr(a, '>', alen) != NULL)
            return PARSE_BAD_ADDRESS;
    }
    if (alen == 0) {
        if (!allow_null || !out->path.had_brackets)
            return PARSE_BAD_ADDRESS;
        out->path.null_path = true;
        out->path.addr = a;
        out->path.ascii = true;
    } else {
        /* A source route (RFC 5321 4.1.2 "@a,@b:") is read and ignored,
         * as RFC 5321 Appendix C allows. */
        if (a[0] == '@') {
            const char *colon = memchr(a, ':', alen);
            if (colon == NULL)
                return PARSE_BAD_ADDRESS;
            alen -= (size_t)(colon + 1 - a);
            a = colon + 1;
        }
        enum smtp_parse_result r = smtp_parse_mailbox(a, alen, &out->path);
        if (r != PARSE_OK)
            return r;
        out->path.had_brackets = args[i] == '<';
    }
    return smtp_parse_params(args + path_end, len - path_end, out->params,
                             SMTP_MAX_PARAMS, &out->n_params);
}

enum smtp_parse_result
smtp_parse_mail(const char *args, size_t len, struct smtp_envelope_args *out)
{
    return parse_envelope(args, len, "FROM:", true, out);
}

enum smtp_parse_result
smtp_parse_rcpt(const char *args, size_t len, struct smtp_envelope_args *out)
{
    return parse_envelope(args, len, "TO:", false, out);
}

int
smtp_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

enum smtp_parse_result
smtp_parse_bdat(const char *args, size_t len, uint64_t *size, bool *last)
{
    size_t i = 0;
    while (i < len && !is_sp(args[i]))
        i++;
    if (smtp_parse_u64(args, i, size) < 0)
        return PARSE_SYNTAX;
    while (i < len && is_sp(args[i]))
        i++;
    *last = false;
    if (i == len)
        return PARSE_OK;
    if (len - i == 4 && str_ieq_n(args + i, "LAST", 4)) {
        *last = true;
        return PARSE_OK;
    }
    return PARSE_SYNTAX;
}

enum smtp_parse_result
smtp_parse_auth(const char *args, size_t len, const char **mech,
                size_t *mech_len, const char **initial, size_t *initial_len)
{
    size_t i = 0;
    while (i < len && !is_sp(args[i]))
        i++;
    if (i == 0)
        return PARSE_SYNTAX;
    *mech = args;
    *mech_len = i;
    while (i < len && is_sp(args[i]))
        i++;
    *initial = i < len ? args + i : NULL;
    *initial_len = len - i;
    if (*initial && memchr(*initial, ' ', *initial_len))
        return PARSE_SYNTAX;
    return PARSE_OK;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* RFC 3461: upper-case hex only */
}

long
smtp_xtext_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (i + 2 >= len)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (unsigned char)(h * 16 + l);
            if (c == 0) /* would cut the NUL-terminated result short */
                return -1;
            i += 2;
        } else if (c < '!' || c > '~' || c == '=') {
            return -1;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}
