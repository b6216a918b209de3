/*
 * test_smtp_parse: command splitting and verb lookup, MAIL/RCPT paths and
 * ESMTP parameters, mailbox syntax (quoted local parts, address literals,
 * UTF-8), BDAT and AUTH arguments, xtext and decimal parsing, and the
 * forbidden-command detection (HTTP verbs, header lines).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"
#include "util.h"

#define S(x) x, sizeof(x) - 1

static void
view_is(const char *p, size_t n, const char *want)
{
    assert_non_null(p);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

static enum smtp_parse_result
cmd(const char *s, struct smtp_command *c)
{
    return smtp_parse_command(s, strlen(s), c);
}

static enum smtp_parse_result
mail(const char *s, struct smtp_envelope_args *e)
{
    return smtp_parse_mail(s, strlen(s), e);
}

static enum smtp_parse_result
rcpt(const char *s, struct smtp_envelope_args *e)
{
    return smtp_parse_rcpt(s, strlen(s), e);
}

static enum smtp_parse_result
mailbox(const char *s, struct smtp_path *p)
{
    return smtp_parse_mailbox(s, strlen(s), p);
}

/* ---- command lines ---------------------------------------------------- */

static void
test_smtp_parse_recognises_every_verb(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum smtp_verb verb;
    } v[] = {
        {"HELO", SMTP_VERB_HELO},         {"EHLO", SMTP_VERB_EHLO},
        {"MAIL", SMTP_VERB_MAIL},         {"RCPT", SMTP_VERB_RCPT},
        {"DATA", SMTP_VERB_DATA},         {"BDAT", SMTP_VERB_BDAT},
        {"RSET", SMTP_VERB_RSET},         {"NOOP", SMTP_VERB_NOOP},
        {"QUIT", SMTP_VERB_QUIT},         {"VRFY", SMTP_VERB_VRFY},
        {"HELP", SMTP_VERB_HELP},         {"STARTTLS", SMTP_VERB_STARTTLS},
        {"AUTH", SMTP_VERB_AUTH},         {"XCLIENT", SMTP_VERB_XCLIENT},
        {"GET", SMTP_VERB_FORBIDDEN},     {"POST", SMTP_VERB_FORBIDDEN},
        {"CONNECT", SMTP_VERB_FORBIDDEN},
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(v); i++) {
        struct smtp_command c;
        assert_int_equal(cmd(v[i].name, &c), PARSE_OK);
        assert_int_equal(c.verb, v[i].verb);
        view_is(c.verb_str, c.verb_len, v[i].name);
        assert_int_equal(c.args_len, 0);
        assert_non_null(c.args);
    }
}

static void
test_smtp_parse_verbs_case_insensitive(void **state)
{
    (void)state;
    struct smtp_command c;
    assert_int_equal(cmd("ehlo client.example", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_EHLO);
    view_is(c.verb_str, c.verb_len, "ehlo");
    view_is(c.args, c.args_len, "client.example");
    assert_int_equal(cmd("StartTls", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_STARTTLS);
    assert_int_equal(cmd("mAiL FROM:<a@b>", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_MAIL);
    assert_int_equal(cmd("xclient ADDR=1.2.3.4", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_XCLIENT);
    assert_int_equal(cmd("get / HTTP/1.1", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_FORBIDDEN);
}

static void
test_smtp_parse_splits_args_and_trims_spaces(void **state)
{
    (void)state;
    struct smtp_command c;
    assert_int_equal(cmd("  MAIL   FROM:<a@b> SIZE=10 \t ", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_MAIL);
    view_is(c.verb_str, c.verb_len, "MAIL");
    view_is(c.args, c.args_len, "FROM:<a@b> SIZE=10");
    assert_int_equal(cmd("HELO\tclient", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_HELO);
    view_is(c.args, c.args_len, "client");
    assert_int_equal(cmd("QUIT   ", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_QUIT);
    assert_int_equal(c.args_len, 0);
    /* Internal spacing inside the arguments is kept. */
    assert_int_equal(cmd("NOOP a  b", &c), PARSE_OK);
    view_is(c.args, c.args_len, "a  b");
}

static void
test_smtp_parse_empty_line(void **state)
{
    (void)state;
    struct smtp_command c;
    assert_int_equal(smtp_parse_command("", 0, &c), PARSE_EMPTY);
    assert_int_equal(cmd("   ", &c), PARSE_EMPTY);
    assert_int_equal(cmd("\t \t", &c), PARSE_EMPTY);
    assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
}

static void
test_smtp_parse_unknown_verbs(void **state)
{
    (void)state;
    static const char *unk[] = {
        "MAILX FROM:<a@b>",
        "HEL",
        "EHLOO x",
        "XYZZY",
        "STARTTLSX",
        "E HLO",
        ":",
        "::",
        "QUIT.",
        "DATA\r",
        "Sub ject: x",
        "\xc3\xa9:",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(unk); i++) {
        struct smtp_command c;
        assert_int_equal(cmd(unk[i], &c), PARSE_OK);
        assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
        assert_true(c.verb_len > 0);
    }
}

static void
test_smtp_parse_rejects_nul_in_verb(void **state)
{
    (void)state;
    struct smtp_command c;
    assert_int_equal(smtp_parse_command(S("QU\0IT"), &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
    assert_int_equal(c.verb_len, 5);
    assert_int_equal(smtp_parse_command(S("QUIT\0"), &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
    assert_int_equal(smtp_parse_command(S("\0QUIT"), &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
    assert_int_equal(smtp_parse_command(S("Subj\0ect: x"), &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
    /* A NUL in the arguments does not change the verb. */
    assert_int_equal(smtp_parse_command(S("HELO a\0b"), &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_HELO);
    assert_int_equal(c.args_len, 3);
}

static void
test_smtp_parse_uses_length_not_nul(void **state)
{
    (void)state;
    struct smtp_command c;
    assert_int_equal(smtp_parse_command("QUIT now", 4, &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_QUIT);
    assert_int_equal(c.args_len, 0);
}

static void
test_smtp_parse_forbidden_http_verbs(void **state)
{
    (void)state;
    struct smtp_command c;
    assert_int_equal(cmd("GET / HTTP/1.0", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_FORBIDDEN);
    view_is(c.verb_str, c.verb_len, "GET");
    view_is(c.args, c.args_len, "/ HTTP/1.0");
    assert_int_equal(cmd("POST /api HTTP/1.1", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_FORBIDDEN);
    assert_int_equal(cmd("CONNECT mx.example:25 HTTP/1.1", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_FORBIDDEN);
    assert_int_equal(cmd("connect x", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_FORBIDDEN);
    assert_int_equal(cmd("GETX /", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
    assert_int_equal(cmd("PUT /", &c), PARSE_OK);
    assert_int_equal(c.verb, SMTP_VERB_UNKNOWN);
}

static void
test_smtp_parse_forbidden_header_lines(void **state)
{
    (void)state;
    static const char *hdr[] = {
        "Subject: hello",   "Subject:",
        "From: a@b",        "X-Mailer: test 1.0",
        "Content-Type: x",  "MIME-Version: 1.0",
        "Received: from x", "X-1:",
        "Subject:hi",       "Sub_ject: x",
        "MAIL-FROM:<x>",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(hdr); i++) {
        struct smtp_command c;
        assert_int_equal(cmd(hdr[i], &c), PARSE_OK);
        assert_int_equal(c.verb, SMTP_VERB_FORBIDDEN);
    }
}

static void
test_smtp_parse_names(void **state)
{
    (void)state;
    assert_string_equal(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
    assert_string_equal(smtp_verb_name(SMTP_VERB_HELO), "HELO");
    assert_string_equal(smtp_verb_name(SMTP_VERB_EHLO), "EHLO");
    assert_string_equal(smtp_verb_name(SMTP_VERB_MAIL), "MAIL");
    assert_string_equal(smtp_verb_name(SMTP_VERB_RCPT), "RCPT");
    assert_string_equal(smtp_verb_name(SMTP_VERB_DATA), "DATA");
    assert_string_equal(smtp_verb_name(SMTP_VERB_BDAT), "BDAT");
    assert_string_equal(smtp_verb_name(SMTP_VERB_RSET), "RSET");
    assert_string_equal(smtp_verb_name(SMTP_VERB_NOOP), "NOOP");
    assert_string_equal(smtp_verb_name(SMTP_VERB_QUIT), "QUIT");
    assert_string_equal(smtp_verb_name(SMTP_VERB_VRFY), "VRFY");
    assert_string_equal(smtp_verb_name(SMTP_VERB_HELP), "HELP");
    assert_string_equal(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
    assert_string_equal(smtp_verb_name(SMTP_VERB_AUTH), "AUTH");
    assert_string_equal(smtp_verb_name(SMTP_VERB_XCLIENT), "XCLIENT");
    assert_string_equal(smtp_verb_name(SMTP_VERB_FORBIDDEN), "FORBIDDEN");
    assert_string_equal(smtp_verb_name((enum smtp_verb)999), "?");
    assert_string_equal(smtp_parse_result_name(PARSE_OK), "PARSE_OK");
    assert_string_equal(smtp_parse_result_name(PARSE_EMPTY), "PARSE_EMPTY");
    assert_string_equal(smtp_parse_result_name(PARSE_SYNTAX), "PARSE_SYNTAX");
    assert_string_equal(smtp_parse_result_name(PARSE_BAD_ADDRESS),
                        "PARSE_BAD_ADDRESS");
    assert_string_equal(smtp_parse_result_name(PARSE_TOO_MANY),
                        "PARSE_TOO_MANY");
    assert_string_equal(smtp_parse_result_name((enum smtp_parse_result)99),
                        "?");
}

/* ---- MAIL / RCPT ------------------------------------------------------ */

static void
test_smtp_parse_mail_with_brackets(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(mail("FROM:<alice@example.com>", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "alice@example.com");
    view_is(e.path.local, e.path.local_len, "alice");
    view_is(e.path.domain, e.path.domain_len, "example.com");
    assert_true(e.path.had_brackets);
    assert_false(e.path.null_path);
    assert_true(e.path.ascii);
    assert_int_equal(e.n_params, 0);
}

static void
test_smtp_parse_mail_keyword_case_insensitive(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(mail("from:<a@b.example>", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "a@b.example");
    assert_int_equal(mail("From:<a@b.example>", &e), PARSE_OK);
    assert_int_equal(rcpt("to:<a@b.example>", &e), PARSE_OK);
    assert_int_equal(rcpt("tO:<a@b.example>", &e), PARSE_OK);
}

static void
test_smtp_parse_mail_without_brackets(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(mail("FROM:alice@example.com", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "alice@example.com");
    assert_false(e.path.had_brackets);
    assert_int_equal(mail("FROM:alice@example.com SIZE=100", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "alice@example.com");
    assert_int_equal(e.n_params, 1);
    assert_int_equal(rcpt("TO:bob@example.org", &e), PARSE_OK);
    assert_false(e.path.had_brackets);
    /* A '>' without its '<' is not an address. */
    assert_int_equal(mail("FROM:alice@example.com>", &e), PARSE_BAD_ADDRESS);
    assert_int_equal(mail("FROM:alice>@example.com", &e), PARSE_BAD_ADDRESS);
}

static void
test_smtp_parse_mail_space_after_colon(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(mail("FROM: <a@b.example>", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "a@b.example");
    assert_true(e.path.had_brackets);
    assert_int_equal(mail("FROM:  \t<a@b.example>", &e), PARSE_OK);
    assert_int_equal(mail("FROM: a@b.example", &e), PARSE_OK);
    assert_false(e.path.had_brackets);
    assert_int_equal(rcpt("TO: <c@d.example>", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "c@d.example");
}

static void
test_smtp_parse_mail_rejects_bad_keyword(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(mail("", &e), PARSE_SYNTAX);
    assert_int_equal(mail("FROM", &e), PARSE_SYNTAX);
    assert_int_equal(mail("FROM:", &e), PARSE_SYNTAX);
    assert_int_equal(mail("FROM:   ", &e), PARSE_SYNTAX);
    assert_int_equal(mail("FROM <a@b>", &e), PARSE_SYNTAX);
    assert_int_equal(mail("FROM :<a@b>", &e), PARSE_SYNTAX);
    assert_int_equal(mail("FRM:<a@b>", &e), PARSE_SYNTAX);
    assert_int_equal(mail("TO:<a@b>", &e), PARSE_SYNTAX);
    assert_int_equal(mail("<a@b>", &e), PARSE_SYNTAX);
    assert_int_equal(rcpt("FROM:<a@b>", &e), PARSE_SYNTAX);
    assert_int_equal(rcpt("TO", &e), PARSE_SYNTAX);
    assert_int_equal(rcpt("TO:", &e), PARSE_SYNTAX);
}

static void
test_smtp_parse_null_path_mail_only(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(mail("FROM:<>", &e), PARSE_OK);
    assert_true(e.path.null_path);
    assert_true(e.path.had_brackets);
    assert_true(e.path.ascii);
    assert_int_equal(e.path.addr_len, 0);
    assert_null(e.path.domain);
    assert_int_equal(mail("FROM: <> SIZE=42 BODY=7BIT", &e), PARSE_OK);
    assert_true(e.path.null_path);
    assert_int_equal(e.n_params, 2);

    assert_int_equal(rcpt("TO:<>", &e), PARSE_BAD_ADDRESS);
    assert_int_equal(rcpt("TO: <>", &e), PARSE_BAD_ADDRESS);
    /* Brackets are what make the null path. */
    assert_int_equal(mail("FROM:<>x", &e), PARSE_BAD_ADDRESS);
    assert_int_equal(mail("FROM:< >", &e), PARSE_BAD_ADDRESS);
}

static void
test_smtp_parse_rcpt_postmaster_without_domain(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(rcpt("TO:<postmaster>", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "postmaster");
    view_is(e.path.local, e.path.local_len, "postmaster");
    assert_null(e.path.domain);
    assert_int_equal(e.path.domain_len, 0);
    assert_int_equal(rcpt("TO:<Postmaster>", &e), PARSE_OK);
}

static void
test_smtp_parse_source_route_ignored(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(
        mail("FROM:<@relay1.example,@relay2.example:user@example.com>", &e),
        PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "user@example.com");
    view_is(e.path.domain, e.path.domain_len, "example.com");
    assert_true(e.path.had_brackets);
    assert_int_equal(
        rcpt("TO:<@relay.example:bob@example.org> NOTIFY=NEVER", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "bob@example.org");
    assert_int_equal(e.n_params, 1);
    /* A route with no mailbox after it, or no colon, is an error. */
    assert_int_equal(mail("FROM:<@relay.example:>", &e), PARSE_BAD_ADDRESS);
    assert_int_equal(mail("FROM:<@relay.example>", &e), PARSE_BAD_ADDRESS);
    assert_int_equal(rcpt("TO:<@relay.example,user@example.com>", &e),
                     PARSE_BAD_ADDRESS);
}

static void
test_smtp_parse_quoted_local_part(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(rcpt("TO:<\"john doe\"@example.com>", &e), PARSE_OK);
    view_is(e.path.addr, e.path.addr_len, "\"john doe\"@example.com");
    view_is(e.path.local, e.path.local_len, "\"john doe\"");
    view_is(e.path.domain, e.path.domain_len, "example.com");
    /* '>' and '<' inside quotes do not end the path. */
    assert_int_equal(rcpt("TO:<\"a>b<c\"@example.com> NOTIFY=NEVER", &e),
                     PARSE_OK);
    view_is(e.path.local, e.path.local_len, "\"a>b<c\"");
    assert_int_equal(e.n_params, 1);
    /* Escaped quote and backslash. */
    assert_int_equal(rcpt("TO:<\"a\\\"b\\\\c\"@example.com>", &e), PARSE_OK);
    view_is(e.path.local, e.path.local_len, "\"a\\\"b\\\\c\"");
    assert_int_equal(rcpt("TO:<\"\"@example.com>", &e), PARSE_OK);
    assert_int_equal(rcpt("TO:<\"quoted\">", &e), PARSE_OK);
    assert_null(e.path.domain);
}

static void
test_smtp_parse_quoted_local_part_malformed(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    struct smtp_path p;
    assert_int_equal(rcpt("TO:<\"unterminated@example.com>", &e),
                     PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("\"unterminated@example.com", &p),
                     PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("\"a\"b@example.com", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("\"a\\", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("\"a\tb\"@example.com", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("\"a\x7f\"@example.com", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("\"a\\\x01\"@example.com", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(smtp_parse_mailbox(S("\"a\0b\"@example.com"), &p),
                     PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("\"a\"@", &p), PARSE_BAD_ADDRESS);
    /* Without brackets a space ends the path inside the quotes. */
    assert_int_equal(rcpt("TO:\"john doe\"@example.com", &e),
                     PARSE_BAD_ADDRESS);
}

static void
test_smtp_parse_mailbox_address_literals(void **state)
{
    (void)state;
    struct smtp_path p;
    assert_int_equal(mailbox("user@[192.0.2.1]", &p), PARSE_OK);
    view_is(p.domain, p.domain_len, "[192.0.2.1]");
    assert_int_equal(mailbox("user@[IPv6:2001:db8::1]", &p), PARSE_OK);
    assert_int_equal(mailbox("user@[]", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[192.0.2.1", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[192.0.2.1]x", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[1.2]3]", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[1[2]", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[1 2]", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[1\\2]", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[1\xc3\xa9]", &p), PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@[", &p), PARSE_BAD_ADDRESS);
}

static void
test_smtp_parse_mailbox_accepts_common_forms(void **state)
{
    (void)state;
    static const char *good[] = {
        "a@b",
        "first.last@example.com",
        "user+tag@example.com",
        "x!#$%&'*/=?^_`{|}~-y@example.com",
        "user@sub-domain.example.co.uk",
        "user@example.com.",
        "user@under_score.example",
        "USER@EXAMPLE.COM",
        "1234@5678",
        "postmaster",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(good); i++) {
        struct smtp_path p;
        assert_int_equal(mailbox(good[i], &p), PARSE_OK);
        assert_true(p.ascii);
        view_is(p.addr, p.addr_len, good[i]);
    }
}

static void
test_smtp_parse_rejects_bad_addresses(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "@example.com",
        "user@",
        "user@@example.com",
        "user@.example.com",
        "user@example..com",
        "user@exa mple.com",
        "us er@example.com",
        "user(comment)@example.com",
        "user@exa!mple.com",
        "user@example.com@other",
        "user,other@example.com",
        "user;x@example.com",
        "user:x@example.com",
        "user\\x@example.com",
        "<user@example.com>",
        "user@exa<mple.com",
        "user@[",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct smtp_path p;
        assert_int_equal(mailbox(bad[i], &p), PARSE_BAD_ADDRESS);
    }
    struct smtp_path p;
    assert_int_equal(smtp_parse_mailbox(S("us\0er@example.com"), &p),
                     PARSE_BAD_ADDRESS);
    assert_int_equal(smtp_parse_mailbox(S("user@exa\0mple.com"), &p),
                     PARSE_BAD_ADDRESS);
    assert_int_equal(mailbox("user@exa\rmple.com", &p), PARSE_BAD_ADDRESS);
}

static void
test_smtp_parse_mailbox_length_limit(void **state)
{
    (void)state;
    char addr[600];
    struct smtp_path p;
    /* 512 bytes is the cap: local part 500 + "@" + 11-byte domain. */
    memset(addr, 'a', 500);
    memcpy(addr + 500, "@example.co", 11);
    assert_int_equal(smtp_parse_mailbox(addr, 511, &p), PARSE_OK);
    addr[511] = 'm';
    assert_int_equal(smtp_parse_mailbox(addr, 512, &p), PARSE_OK);
    addr[512] = 'x';
    assert_int_equal(smtp_parse_mailbox(addr, 513, &p), PARSE_BAD_ADDRESS);
}

static void
test_smtp_parse_envelope_bad_paths(void **state)
{
    (void)state;
    static const char *bad[] = {
        "FROM:<a@b.example",   /* no closing bracket */
        "FROM:<a@b.example>x", /* junk glued to the path */
        "FROM:<a@b.example>SIZE=1",
        "FROM:<a @b.example>", /* space inside brackets */
        "FROM:<a@b.example >",
        "FROM:< a@b.example>",
        "FROM:<a<b@c.example>", /* nested bracket */
        "FROM:<<a@b.example>>",
        "FROM:<a@b.example>>",
        "FROM:<\"a@b.example>", /* unterminated quote */
        "FROM:<@>",
        "FROM:<@a:>",
        "FROM:<a@>",
        "FROM:<@b.example>",
        "FROM:<a\tb@c.example>",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct smtp_envelope_args e;
        assert_int_equal(mail(bad[i], &e), PARSE_BAD_ADDRESS);
    }
}

static void
test_smtp_parse_utf8_addresses(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    /* RFC 6531 examples: UTF-8 local part and U-label domain. */
    assert_int_equal(
        mail("FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
             "\xe5\xb9\xbf\xe5\x91\x8a> SMTPUTF8",
             &e),
        PARSE_OK);
    assert_false(e.path.ascii);
    assert_int_equal(e.n_params, 1);
    view_is(e.params[0].key, e.params[0].key_len, "SMTPUTF8");
    view_is(e.path.domain, e.path.domain_len,
            "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a");
    assert_int_equal(rcpt("TO:<J\xc3\xbcrgen@m\xc3\xbcller.example>", &e),
                     PARSE_OK);
    assert_false(e.path.ascii);
    assert_int_equal(rcpt("TO:<\"J\xc3\xbc rgen\"@example.com>", &e), PARSE_OK);
    assert_false(e.path.ascii);
    assert_int_equal(rcpt("TO:<plain@example.com>", &e), PARSE_OK);
    assert_true(e.path.ascii);
}

static void
test_smtp_parse_rejects_invalid_utf8_addresses(void **state)
{
    (void)state;
    static const char *bad[] = {
        "FROM:<\xff@example.com>",
        "FROM:<user@\xff.example>",
        "FROM:<\xc0\xaf@example.com>",          /* overlong '/' */
        "FROM:<\xed\xa0\x80@example.com>",      /* surrogate */
        "FROM:<\xc3@example.com>",              /* truncated */
        "FROM:<user@example.\xf4\x90\x80\x80>", /* > U+10FFFF */
        "FROM:\x80user@example.com",
        "FROM:<\"\xfe\"@example.com>",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct smtp_envelope_args e;
        assert_int_equal(mail(bad[i], &e), PARSE_BAD_ADDRESS);
    }
}

/* ---- ESMTP parameters ------------------------------------------------- */

static void
test_smtp_parse_esmtp_params(void **state)
{
    (void)state;
    struct smtp_envelope_args e;
    assert_int_equal(mail("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME "
                          "SMTPUTF8 RET=HDRS ENVID=QQ314159",
                          &e),
                     PARSE_OK);
    assert_int_equal(e.n_params, 5);
    view_is(e.params[0].key, e.params[0].key_len, "SIZE");
    view_is(e.params[0].val, e.params[0].val_len, "1000");
    view_is(e.params[1].key, e.params[1].key_len, "BODY");
    view_is(e.params[1].val, e.params[1].val_len, "8BITMIME");
    view_is(e.params[2].key, e.params[2].key_len, "SMTPUTF8");
    assert_null(e.params[2].val);
    assert_int_equal(e.params[2].val_len, 0);
    view_is(e.params[3].key, e.params[3].key_len, "RET");
    view_is(e.params[4].key, e.params[4].key_len, "ENVID");
    view_is(e.params[4].val, e.params[4].val_len, "QQ314159");

    assert_int_equal(rcpt("TO:<c@d.example> NOTIFY=SUCCESS,FAILURE "
                          "ORCPT=rfc822;c+2Bx@d.example",
                          &e),
                     PARSE_OK);
    assert_int_equal(e.n_params, 2);
    view_is(e.params[1].val, e.params[1].val_len, "rfc822;c+2Bx@d.example");
}

static void
test_smtp_parse_params_spacing_and_values(void **state)
{
    (void)state;
    struct smtp_param p[4];
    size_t n = 99;
    assert_int_equal(smtp_parse_params(S("  A=1 \t B  C= "), p, 4, &n),
                     PARSE_OK);
    assert_int_equal(n, 3);
    view_is(p[0].key, p[0].key_len, "A");
    view_is(p[0].val, p[0].val_len, "1");
    view_is(p[1].key, p[1].key_len, "B");
    assert_null(p[1].val);
    view_is(p[2].key, p[2].key_len, "C");
    assert_non_null(p[2].val); /* "C=": empty, not absent */
    assert_int_equal(p[2].val_len, 0);
    /* Only the first '=' splits. */
    assert_int_equal(smtp_parse_params(S("X-Y=a=b"), p, 4, &n), PARSE_OK);
    assert_int_equal(n, 1);
    view_is(p[0].key, p[0].key_len, "X-Y");
    view_is(p[0].val, p[0].val_len, "a=b");
    assert_int_equal(smtp_parse_params("", 0, p, 4, &n), PARSE_OK);
    assert_int_equal(n, 0);
}

static void
test_smtp_parse_params_rejects_bad_keywords(void **state)
{
    (void)state;
    static const char *bad[] = {
        "=1", "SI_ZE=1", "SIZE.X=1", "S\xc3\xa9=1", "A=1 =2", "<x>", "A:B",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct smtp_param p[4];
        size_t n;
        assert_int_equal(smtp_parse_params(bad[i], strlen(bad[i]), p, 4, &n),
                         PARSE_SYNTAX);
    }
    struct smtp_envelope_args e;
    assert_int_equal(mail("FROM:<a@b.example> =x", &e), PARSE_SYNTAX);
    assert_int_equal(mail("FROM:<a@b.example> SIZE=1 B@D", &e), PARSE_SYNTAX);
}

static void
test_smtp_parse_too_many_params(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "FROM:<a@b.example>"), 0);
    for (int i = 0; i < SMTP_MAX_PARAMS; i++)
        assert_int_equal(buf_printf(&b, " P%d=%d", i, i), 0);
    struct smtp_envelope_args e;
    assert_int_equal(smtp_parse_mail(b.data, b.len, &e), PARSE_OK);
    assert_int_equal(e.n_params, SMTP_MAX_PARAMS);
    view_is(e.params[SMTP_MAX_PARAMS - 1].key,
            e.params[SMTP_MAX_PARAMS - 1].key_len, "P15");
    assert_int_equal(buf_append_str(&b, " ONE-MORE"), 0);
    assert_int_equal(smtp_parse_mail(b.data, b.len, &e), PARSE_TOO_MANY);
    buf_cleanup(&b);

    struct smtp_param p[2];
    size_t n;
    assert_int_equal(smtp_parse_params(S("A B"), p, 2, &n), PARSE_OK);
    assert_int_equal(smtp_parse_params(S("A B C"), p, 2, &n), PARSE_TOO_MANY);
    assert_int_equal(smtp_parse_params(S("A B   "), p, 2, &n), PARSE_OK);
    assert_int_equal(smtp_parse_params(S("A"), p, 0, &n), PARSE_TOO_MANY);
}

/* ---- BDAT ------------------------------------------------------------- */

static enum smtp_parse_result
bdat(const char *s, uint64_t *size, bool *last)
{
    return smtp_parse_bdat(s, strlen(s), size, last);
}

static void
test_smtp_parse_bdat_args(void **state)
{
    (void)state;
    uint64_t size = 7;
    bool last = true;
    assert_int_equal(bdat("100", &size, &last), PARSE_OK);
    assert_true(size == 100);
    assert_false(last);
    assert_int_equal(bdat("0 LAST", &size, &last), PARSE_OK);
    assert_true(size == 0);
    assert_true(last);
    assert_int_equal(bdat("42 last", &size, &last), PARSE_OK);
    assert_true(size == 42);
    assert_true(last);
    assert_int_equal(bdat("42   LaSt", &size, &last), PARSE_OK);
    assert_true(last);
    assert_int_equal(bdat("42\tLAST", &size, &last), PARSE_OK);
    assert_true(last);
    assert_int_equal(bdat("18446744073709551615", &size, &last), PARSE_OK);
    assert_true(size == UINT64_MAX);
    assert_int_equal(bdat("000123 LAST", &size, &last), PARSE_OK);
    assert_true(size == 123);
}

static void
test_smtp_parse_bdat_rejects_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "LAST",
        "abc",
        "-1",
        "+1",
        "1a",
        "1.5",
        "0x10",
        "18446744073709551616",
        "99999999999999999999",
        "000000000000000000001",
        "100 LASTX",
        "100 LAS",
        "100 LAST x",
        "100 200",
        "100 END",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        uint64_t size;
        bool last;
        assert_int_equal(bdat(bad[i], &size, &last), PARSE_SYNTAX);
    }
}

static void
test_smtp_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 5;
    assert_int_equal(smtp_parse_u64(S("0"), &v), 0);
    assert_true(v == 0);
    assert_int_equal(smtp_parse_u64(S("10240000"), &v), 0);
    assert_true(v == 10240000);
    assert_int_equal(smtp_parse_u64(S("18446744073709551615"), &v), 0);
    assert_true(v == UINT64_MAX);
    v = 5;
    assert_int_equal(smtp_parse_u64(S("18446744073709551616"), &v), -1);
    assert_int_equal(smtp_parse_u64(S("18446744073709551620"), &v), -1);
    assert_int_equal(smtp_parse_u64(S("28446744073709551615"), &v), -1);
    assert_int_equal(smtp_parse_u64("", 0, &v), -1);
    assert_int_equal(smtp_parse_u64(S(" 1"), &v), -1);
    assert_int_equal(smtp_parse_u64(S("1 "), &v), -1);
    assert_int_equal(smtp_parse_u64(S("-0"), &v), -1);
    assert_true(v == 5); /* untouched on error */
    assert_int_equal(smtp_parse_u64("123", 2, &v), 0);
    assert_true(v == 12);
}

/* ---- AUTH ------------------------------------------------------------- */

static void
test_smtp_parse_auth_args(void **state)
{
    (void)state;
    const char *mech, *init;
    size_t ml, il;
    assert_int_equal(smtp_parse_auth(S("PLAIN"), &mech, &ml, &init, &il),
                     PARSE_OK);
    view_is(mech, ml, "PLAIN");
    assert_null(init);
    assert_int_equal(il, 0);
    assert_int_equal(
        smtp_parse_auth(S("PLAIN AHVzZXIAcGFzcw=="), &mech, &ml, &init, &il),
        PARSE_OK);
    view_is(mech, ml, "PLAIN");
    view_is(init, il, "AHVzZXIAcGFzcw==");
    /* "=" is the empty initial response (RFC 4954). */
    assert_int_equal(smtp_parse_auth(S("LOGIN ="), &mech, &ml, &init, &il),
                     PARSE_OK);
    view_is(init, il, "=");
    assert_int_equal(
        smtp_parse_auth(S("xoauth2 \t dG9r"), &mech, &ml, &init, &il),
        PARSE_OK);
    view_is(mech, ml, "xoauth2");
    view_is(init, il, "dG9r");
    assert_int_equal(smtp_parse_auth(S("PLAIN  "), &mech, &ml, &init, &il),
                     PARSE_OK);
    assert_null(init);
}

static void
test_smtp_parse_auth_rejects_malformed(void **state)
{
    (void)state;
    const char *mech, *init;
    size_t ml, il;
    assert_int_equal(smtp_parse_auth("", 0, &mech, &ml, &init, &il),
                     PARSE_SYNTAX);
    assert_int_equal(smtp_parse_auth(S(" PLAIN"), &mech, &ml, &init, &il),
                     PARSE_SYNTAX);
    assert_int_equal(
        smtp_parse_auth(S("PLAIN abc def"), &mech, &ml, &init, &il),
        PARSE_SYNTAX);
}

/* ---- xtext ------------------------------------------------------------ */

static long
xtext(const char *s, char *out, size_t cap)
{
    return smtp_xtext_decode(s, strlen(s), out, cap);
}

static void
test_smtp_parse_xtext_decodes(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(xtext("abc", out, sizeof(out)), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(xtext("a+2Bb", out, sizeof(out)), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(xtext("+3D", out, sizeof(out)), 1);
    assert_string_equal(out, "=");
    assert_int_equal(xtext("rfc822;user+2Btag@example.com", out, sizeof(out)),
                     27);
    assert_string_equal(out, "rfc822;user+tag@example.com");
    assert_int_equal(xtext("+20+7E+FF", out, sizeof(out)), 3);
    assert_memory_equal(out, " ~\xff", 4);
    assert_int_equal(xtext("!~", out, sizeof(out)), 2);
    assert_int_equal(xtext("", out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void
test_smtp_parse_xtext_rejects_bad_hex(void **state)
{
    (void)state;
    static const char *bad[] = {
        "+",   "+2",   "a+",  "a+2", "+2b",   "+2g",  "+G0",         "+ 20",
        "+-1", "++2B", "a=b", "a b", "a\x01", "\x7f", "caf\xc3\xa9",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        char out[64];
        assert_int_equal(xtext(bad[i], out, sizeof(out)), -1);
    }
}

static void
test_smtp_parse_xtext_rejects_encoded_nul(void **state)
{
    (void)state;
    char out[64];
    /* "192.0.2.1+00junk" must not read as "192.0.2.1". */
    assert_int_equal(xtext("192.0.2.1+00junk", out, sizeof(out)), -1);
    assert_int_equal(xtext("+00", out, sizeof(out)), -1);
    assert_int_equal(xtext("+01", out, sizeof(out)), 1);
}

static void
test_smtp_parse_xtext_respects_capacity(void **state)
{
    (void)state;
    char out[4];
    assert_int_equal(xtext("abc", out, 4), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(xtext("abcd", out, 4), -1);
    assert_int_equal(xtext("ab+2B", out, 4), 3);
    assert_int_equal(xtext("ab+2Bc", out, 4), -1);
    assert_int_equal(xtext("a", out, 1), -1);
    assert_int_equal(xtext("", out, 1), 0);
    assert_int_equal(xtext("", out, 0), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_parse_recognises_every_verb),
        cmocka_unit_test(test_smtp_parse_verbs_case_insensitive),
        cmocka_unit_test(test_smtp_parse_splits_args_and_trims_spaces),
        cmocka_unit_test(test_smtp_parse_empty_line),
        cmocka_unit_test(test_smtp_parse_unknown_verbs),
        cmocka_unit_test(test_smtp_parse_rejects_nul_in_verb),
        cmocka_unit_test(test_smtp_parse_uses_length_not_nul),
        cmocka_unit_test(test_smtp_parse_forbidden_http_verbs),
        cmocka_unit_test(test_smtp_parse_forbidden_header_lines),
        cmocka_unit_test(test_smtp_parse_names),
        cmocka_unit_test(test_smtp_parse_mail_with_brackets),
        cmocka_unit_test(test_smtp_parse_mail_keyword_case_insensitive),
        cmocka_unit_test(test_smtp_parse_mail_without_brackets),
        cmocka_unit_test(test_smtp_parse_mail_space_after_colon),
        cmocka_unit_test(test_smtp_parse_mail_rejects_bad_keyword),
        cmocka_unit_test(test_smtp_parse_null_path_mail_only),
        cmocka_unit_test(test_smtp_parse_rcpt_postmaster_without_domain),
        cmocka_unit_test(test_smtp_parse_source_route_ignored),
        cmocka_unit_test(test_smtp_parse_quoted_local_part),
        cmocka_unit_test(test_smtp_parse_quoted_local_part_malformed),
        cmocka_unit_test(test_smtp_parse_mailbox_address_literals),
        cmocka_unit_test(test_smtp_parse_mailbox_accepts_common_forms),
        cmocka_unit_test(test_smtp_parse_rejects_bad_addresses),
        cmocka_unit_test(test_smtp_parse_mailbox_length_limit),
        cmocka_unit_test(test_smtp_parse_envelope_bad_paths),
        cmocka_unit_test(test_smtp_parse_utf8_addresses),
        cmocka_unit_test(test_smtp_parse_rejects_invalid_utf8_addresses),
        cmocka_unit_test(test_smtp_parse_esmtp_params),
        cmocka_unit_test(test_smtp_parse_params_spacing_and_values),
        cmocka_unit_test(test_smtp_parse_params_rejects_bad_keywords),
        cmocka_unit_test(test_smtp_parse_too_many_params),
        cmocka_unit_test(test_smtp_parse_bdat_args),
        cmocka_unit_test(test_smtp_parse_bdat_rejects_malformed),
        cmocka_unit_test(test_smtp_parse_u64),
        cmocka_unit_test(test_smtp_parse_auth_args),
        cmocka_unit_test(test_smtp_parse_auth_rejects_malformed),
        cmocka_unit_test(test_smtp_parse_xtext_decodes),
        cmocka_unit_test(test_smtp_parse_xtext_rejects_bad_hex),
        cmocka_unit_test(test_smtp_parse_xtext_rejects_encoded_nul),
        cmocka_unit_test(test_smtp_parse_xtext_respects_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
