/*
 * fuzz_address: the input as a mailbox (smtp_parse_mailbox, what MAIL and
 * RCPT call after the brackets), as an IP literal, a CIDR block and a
 * comma-separated CIDR list (--xclient-from, emu.net.cidrs), and through
 * the log escaper. Round trips: a parsed address formats and parses back
 * to itself; a parsed block contains its own network address.
 */
#include <string.h>

#include "cidr.h"
#include "fuzz.h"
#include "smtp_parse.h"
#include "util.h"

static void
mailbox(const char *s, size_t len)
{
    struct smtp_path p;
    enum smtp_parse_result r = smtp_parse_mailbox(s, len, &p);
    FUZZ_ASSERT(r == PARSE_OK || r == PARSE_BAD_ADDRESS);
    if (r != PARSE_OK)
        return;
    FUZZ_ASSERT(len > 0 && len <= 512);
    FUZZ_ASSERT(p.addr == s && p.addr_len == len);
    FUZZ_ASSERT(fuzz_inside(p.local, p.local_len, s, len));
    FUZZ_ASSERT(p.local_len > 0);
    if (p.domain) {
        FUZZ_ASSERT(p.domain_len > 0);
        FUZZ_ASSERT(p.local_len + 1 + p.domain_len == len);
        FUZZ_ASSERT(s[p.local_len] == '@');
    } else {
        FUZZ_ASSERT(p.local_len == len);
    }
    FUZZ_ASSERT(utf8_valid(s, len));
}

static void
address(const char *s, size_t len)
{
    struct ip_addr a, b;
    if (ip_parse(s, len, &a) < 0)
        return;
    FUZZ_ASSERT(a.family == 4 || a.family == 6);
    char txt[IP_STR_MAX];
    ip_format(&a, txt, sizeof(txt));
    FUZZ_ASSERT(ip_parse(txt, strlen(txt), &b) == 0);
    FUZZ_ASSERT(ip_equal(&a, &b));
    for (unsigned bits = 0; bits <= 129; bits += 7) {
        struct ip_addr m = a;
        ip_mask(&m, bits);
        FUZZ_ASSERT(m.family == a.family);
    }
}

static void
block(const char *s, size_t len, bool lenient)
{
    struct cidr c;
    if (cidr_parse(s, len, lenient, &c) < 0)
        return;
    FUZZ_ASSERT(c.prefix <= (c.net.family == 4 ? 32u : 128u));
    FUZZ_ASSERT(cidr_match(&c, &c.net));
    struct cidr strict;
    if (!lenient && cidr_parse(s, len, true, &strict) == 0) {
        FUZZ_ASSERT(ip_equal(&strict.net, &c.net));
        FUZZ_ASSERT(strict.prefix == c.prefix);
    }
}

static void
list(const char *s, size_t len)
{
    struct cidr_list l;
    size_t bad_at = SIZE_MAX, bad_len = SIZE_MAX;
    if (cidr_list_parse(s, len, &l, &bad_at, &bad_len) < 0) {
        FUZZ_ASSERT(l.v == NULL && l.n == 0);
        FUZZ_ASSERT(bad_at <= len && bad_len <= len - bad_at);
        return;
    }
    for (size_t i = 0; i < l.n; i++)
        FUZZ_ASSERT(cidr_list_match(&l, &l.v[i].net));
    cidr_list_cleanup(&l);
}

static void
escape(const char *s, size_t len)
{
    struct buf b = {0};
    FUZZ_ASSERT(str_escape(&b, s, len, 64) == 0);
    FUZZ_ASSERT(b.data != NULL && b.len <= 64 * 4 + 3);
    FUZZ_ASSERT(memchr(b.data, '\0', b.len) == NULL);
    for (size_t i = 0; i < b.len; i++)
        FUZZ_ASSERT((unsigned char)b.data[i] >= 0x20);
    buf_cleanup(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    mailbox(s, size);
    address(s, size);
    block(s, size, false);
    block(s, size, true);
    list(s, size);
    escape(s, size);
    /* Bracketed forms as they arrive in MAIL FROM:<...> and [literal]. */
    if (size >= 2 && s[0] == '<' && s[size - 1] == '>')
        mailbox(s + 1, size - 2);
    if (size >= 2 && s[0] == '[' && s[size - 1] == ']')
        address(s + 1, size - 2);
    return 0;
}
