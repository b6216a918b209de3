/*
 * smtp_parse: pure parsing of SMTP command lines (RFC 5321 section 4.1):
 * the verb, MAIL/RCPT paths and their ESMTP parameters, BDAT and AUTH
 * arguments, XCLIENT attributes and xtext (RFC 3461 section 4). It returns
 * views into the caller's buffer and never allocates. What is allowed in
 * which state, and the reply wording, belong to smtp_session.
 */
#ifndef EMU_SMTP_PARSE_H
#define EMU_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_verb {
    SMTP_VERB_UNKNOWN,
    SMTP_VERB_HELO,
    SMTP_VERB_EHLO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_BDAT,
    SMTP_VERB_RSET,
    SMTP_VERB_NOOP,
    SMTP_VERB_QUIT,
    SMTP_VERB_VRFY,
    SMTP_VERB_HELP,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_AUTH,
    SMTP_VERB_XCLIENT,
    /* Lines an HTTP client or a confused proxy sends (Postfix's
     * smtpd_forbidden_commands): answered and the session ends. */
    SMTP_VERB_FORBIDDEN,
};

const char *smtp_verb_name(enum smtp_verb v);

enum smtp_parse_result {
    PARSE_OK,
    PARSE_EMPTY,  /* blank line or only spaces */
    PARSE_SYNTAX, /* wrong shape for the command */
    PARSE_BAD_ADDRESS,
    PARSE_TOO_MANY, /* more parameters than SMTP_MAX_PARAMS */
};

const char *smtp_parse_result_name(enum smtp_parse_result r);

struct smtp_command {
    enum smtp_verb verb;
    const char *verb_str; /* as typed, for logs */
    size_t verb_len;
    const char *args; /* after the separating space(s); may be empty */
    size_t args_len;
};

/* Split a command line (without its line ending). */
enum smtp_parse_result smtp_parse_command(const char *line, size_t len,
                                          struct smtp_command *out);

#define SMTP_MAX_PARAMS 16

struct smtp_param {
    const char *key;
    size_t key_len;
    const char *val; /* NULL when the keyword had no "=value" */
    size_t val_len;
};

struct smtp_path {
    const char *addr; /* mailbox without brackets or source route */
    size_t addr_len;
    const char *local;
    size_t local_len;
    const char *domain; /* NULL when the address has no "@" */
    size_t domain_len;
    bool null_path; /* "<>" */
    bool ascii;     /* false when the mailbox has UTF-8 in it */
    bool had_brackets;
};

struct smtp_envelope_args {
    struct smtp_path path;
    struct smtp_param params[SMTP_MAX_PARAMS];
    size_t n_params;
};

/* "FROM:<path> params..." (MAIL) and "TO:<path> params..." (RCPT). The null
 * path is accepted for MAIL only. Invalid UTF-8 is PARSE_BAD_ADDRESS. */
enum smtp_parse_result smtp_parse_mail(const char *args, size_t len,
                                       struct smtp_envelope_args *out);
enum smtp_parse_result smtp_parse_rcpt(const char *args, size_t len,
                                       struct smtp_envelope_args *out);

/* Check the syntax of a mailbox (no brackets); fills `out`. */
enum smtp_parse_result smtp_parse_mailbox(const char *s, size_t len,
                                          struct smtp_path *out);

/* "KEY=VALUE KEY ..." separated by spaces. */
enum smtp_parse_result smtp_parse_params(const char *s, size_t len,
                                         struct smtp_param *params, size_t max,
                                         size_t *n);

/* "BDAT size [LAST]". */
enum smtp_parse_result smtp_parse_bdat(const char *args, size_t len,
                                       uint64_t *size, bool *last);

/* "AUTH mechanism [initial-response]". */
enum smtp_parse_result smtp_parse_auth(const char *args, size_t len,
                                       const char **mech, size_t *mech_len,
                                       const char **initial,
                                       size_t *initial_len);

/* Decode RFC 3461 xtext ("+2B" for "+") into out (cap bytes, NUL
 * terminated). Returns decoded length or -1 on bad syntax or overflow. */
long smtp_xtext_decode(const char *s, size_t len, char *out, size_t cap);

/* Parse a decimal number with no sign, no spaces; -1 on junk or overflow. */
int smtp_parse_u64(const char *s, size_t len, uint64_t *out);

#endif
