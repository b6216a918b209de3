/*
 * test_cidr: address parsing and formatting, masking, CIDR blocks (strict
 * and lenient), IPv4-mapped IPv6 folding and comma-separated lists.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "cidr.h"
#include "util.h"

#define S(x) x, sizeof(x) - 1

static struct ip_addr
ip(const char *s)
{
    struct ip_addr a;
    assert_int_equal(ip_parse(s, strlen(s), &a), 0);
    return a;
}

static void
format_is(const struct ip_addr *a, const char *want)
{
    char out[IP_STR_MAX];
    ip_format(a, out, sizeof(out));
    assert_string_equal(out, want);
}

static int
cidr(const char *s, bool lenient, struct cidr *out)
{
    return cidr_parse(s, strlen(s), lenient, out);
}

/* ---- ip_parse / ip_format -------------------------------------------- */

static void
test_cidr_ip_parse_ipv4(void **state)
{
    (void)state;
    struct ip_addr a;
    assert_int_equal(ip_parse(S("192.0.2.1"), &a), 0);
    assert_int_equal(a.family, 4);
    assert_int_equal(a.b[0], 192);
    assert_int_equal(a.b[1], 0);
    assert_int_equal(a.b[2], 2);
    assert_int_equal(a.b[3], 1);
    for (int i = 4; i < 16; i++)
        assert_int_equal(a.b[i], 0);
    format_is(&a, "192.0.2.1");
    a = ip("0.0.0.0");
    format_is(&a, "0.0.0.0");
    a = ip("255.255.255.255");
    format_is(&a, "255.255.255.255");
}

static void
test_cidr_ip_parse_ipv6(void **state)
{
    (void)state;
    struct ip_addr a;
    assert_int_equal(ip_parse(S("2001:db8::1"), &a), 0);
    assert_int_equal(a.family, 6);
    assert_int_equal(a.b[0], 0x20);
    assert_int_equal(a.b[1], 0x01);
    assert_int_equal(a.b[2], 0x0d);
    assert_int_equal(a.b[3], 0xb8);
    assert_int_equal(a.b[15], 1);
    format_is(&a, "2001:db8::1");
    a = ip("::1");
    assert_int_equal(a.family, 6);
    format_is(&a, "::1");
    a = ip("::");
    assert_int_equal(a.family, 6);
    format_is(&a, "::");
    a = ip("2001:DB8:0:0:0:0:0:FF");
    format_is(&a, "2001:db8::ff");
    a = ip("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    assert_int_equal(a.family, 6);
}

static void
test_cidr_ip_parse_folds_v4_mapped(void **state)
{
    (void)state;
    struct ip_addr a = ip("::ffff:192.0.2.7");
    assert_int_equal(a.family, 4);
    struct ip_addr b = ip("192.0.2.7");
    assert_true(ip_equal(&a, &b));
    format_is(&a, "192.0.2.7");
    a = ip("::FFFF:c000:0207");
    assert_true(ip_equal(&a, &b));
    for (int i = 4; i < 16; i++)
        assert_int_equal(a.b[i], 0);
    /* ::ffff:0:a.b.c.d (SIIT) and ::a.b.c.d (compat) are not mapped. */
    a = ip("::ffff:0:192.0.2.7");
    assert_int_equal(a.family, 6);
    a = ip("::192.0.2.7");
    assert_int_equal(a.family, 6);
}

static void
test_cidr_ip_parse_rejects_junk(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",           "192.0.2",     "192.0.2.256",  "192.0.2.1.5",
        "192.0.2.1 ", " 192.0.2.1",  "192.0.2.1:25", "[::1]",
        "::1::2",     "2001:db8::g", "12345::",      "localhost",
        "1.2.3.4/24", "01.2.3.4",    "0x7f.0.0.1",   "::1%eth0",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct ip_addr a;
        assert_int_equal(ip_parse(bad[i], strlen(bad[i]), &a), -1);
    }
}

static void
test_cidr_ip_parse_uses_length_not_nul(void **state)
{
    (void)state;
    struct ip_addr a;
    /* Only the first 9 bytes are the address. */
    assert_int_equal(ip_parse("192.0.2.1:25", 9, &a), 0);
    format_is(&a, "192.0.2.1");
    assert_int_equal(ip_parse("192.0.2.1", 0, &a), -1);
    /* Longer than any address literal: refused without reading past. */
    char longs[100];
    memset(longs, '1', sizeof(longs));
    assert_int_equal(ip_parse(longs, sizeof(longs), &a), -1);
    assert_int_equal(ip_parse(longs, IP_STR_MAX + 1, &a), -1);
    /* NUL inside the view is not an address. */
    assert_int_equal(ip_parse("1.2.3.4\0x", 9, &a), -1);
}

static void
test_cidr_ip_format_small_buffer(void **state)
{
    (void)state;
    struct ip_addr a = ip("192.0.2.123");
    char out[4] = "zzz";
    ip_format(&a, out, sizeof(out));
    assert_string_equal(out, "");
}

static void
test_cidr_ip_equal_compares_family(void **state)
{
    (void)state;
    struct ip_addr a = ip("192.0.2.1");
    struct ip_addr b = ip("192.0.2.1");
    struct ip_addr c = ip("192.0.2.2");
    struct ip_addr d = ip("::c000:201"); /* compat form, family 6 */
    assert_true(ip_equal(&a, &b));
    assert_false(ip_equal(&a, &c));
    assert_false(ip_equal(&a, &d));
    struct ip_addr e = ip("2001:db8::1");
    struct ip_addr f = ip("2001:db8:0::1");
    struct ip_addr g = ip("2001:db8::2");
    assert_true(ip_equal(&e, &f));
    assert_false(ip_equal(&e, &g));
}

static void
test_cidr_ip_mask_keeps_prefix(void **state)
{
    (void)state;
    struct ip_addr a = ip("192.0.2.255");
    ip_mask(&a, 24);
    format_is(&a, "192.0.2.0");
    a = ip("192.0.2.255");
    ip_mask(&a, 25);
    format_is(&a, "192.0.2.128");
    a = ip("192.0.2.255");
    ip_mask(&a, 0);
    format_is(&a, "0.0.0.0");
    a = ip("192.0.2.255");
    ip_mask(&a, 32);
    format_is(&a, "192.0.2.255");
    a = ip("192.0.2.255");
    ip_mask(&a, 99); /* clamped */
    format_is(&a, "192.0.2.255");
    a = ip("255.255.255.255");
    ip_mask(&a, 12);
    format_is(&a, "255.240.0.0");

    a = ip("2001:db8:abcd:1234::1");
    ip_mask(&a, 48);
    format_is(&a, "2001:db8:abcd::");
    a = ip("2001:db8:abcd:1234::1");
    ip_mask(&a, 12);
    format_is(&a, "2000::");
    a = ip("2001:db8::1");
    ip_mask(&a, 128);
    format_is(&a, "2001:db8::1");
    a = ip("2001:db8::1");
    ip_mask(&a, 0);
    format_is(&a, "::");
    a = ip("2001:db8::ffff");
    ip_mask(&a, 127);
    format_is(&a, "2001:db8::fffe");
}

/* ---- cidr_parse ------------------------------------------------------- */

static void
test_cidr_parse_ipv4_blocks(void **state)
{
    (void)state;
    struct cidr c;
    assert_int_equal(cidr("192.0.2.0/24", false, &c), 0);
    assert_int_equal(c.net.family, 4);
    assert_int_equal(c.prefix, 24);
    format_is(&c.net, "192.0.2.0");

    assert_int_equal(cidr("0.0.0.0/0", false, &c), 0);
    assert_int_equal(c.prefix, 0);
    assert_int_equal(cidr("192.0.2.1/32", false, &c), 0);
    assert_int_equal(c.prefix, 32);
    format_is(&c.net, "192.0.2.1");
    assert_int_equal(cidr("10.0.0.0/8", false, &c), 0);
    assert_int_equal(c.prefix, 8);
}

static void
test_cidr_parse_bare_address_is_host(void **state)
{
    (void)state;
    struct cidr c;
    assert_int_equal(cidr("192.0.2.1", false, &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(cidr("2001:db8::1", false, &c), 0);
    assert_int_equal(c.net.family, 6);
    assert_int_equal(c.prefix, 128);
}

static void
test_cidr_parse_ipv6_blocks(void **state)
{
    (void)state;
    struct cidr c;
    assert_int_equal(cidr("2001:db8::/32", false, &c), 0);
    assert_int_equal(c.net.family, 6);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(cidr("::/0", false, &c), 0);
    assert_int_equal(c.prefix, 0);
    assert_int_equal(cidr("::1/128", false, &c), 0);
    assert_int_equal(c.prefix, 128);
    assert_int_equal(cidr("fe80::/10", false, &c), 0);
    assert_int_equal(c.prefix, 10);
}

static void
test_cidr_parse_rejects_host_bits_unless_lenient(void **state)
{
    (void)state;
    struct cidr c;
    assert_int_equal(cidr("192.0.2.1/24", false, &c), -1);
    assert_int_equal(cidr("192.0.2.1/24", true, &c), 0);
    assert_int_equal(c.prefix, 24);
    format_is(&c.net, "192.0.2.0");
    assert_int_equal(cidr("192.0.2.128/24", false, &c), -1);
    assert_int_equal(cidr("1.0.0.0/0", false, &c), -1);
    assert_int_equal(cidr("1.0.0.0/0", true, &c), 0);
    format_is(&c.net, "0.0.0.0");

    assert_int_equal(cidr("2001:db8::1/64", false, &c), -1);
    assert_int_equal(cidr("2001:db8::1/64", true, &c), 0);
    assert_int_equal(c.prefix, 64);
    format_is(&c.net, "2001:db8::");
    assert_int_equal(cidr("2001:db8::1/127", false, &c), -1);
    assert_int_equal(cidr("2001:db8::2/127", false, &c), 0);
}

static void
test_cidr_parse_rejects_bad_prefix(void **state)
{
    (void)state;
    static const char *bad[] = {
        "192.0.2.0/",
        "192.0.2.0/33",
        "192.0.2.0/-1",
        "192.0.2.0/+8",
        "192.0.2.0/2a",
        "192.0.2.0/ 24",
        "192.0.2.0/24 ",
        "192.0.2.0/1000",
        "192.0.2.0/0024",
        "::/129",
        "::/200",
        "::/",
        "/24",
        "192.0.2.0//24",
        "192.0.2/24",
        "bogus/8",
        "",
        "192.0.2.0/24/8",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct cidr c;
        assert_int_equal(cidr(bad[i], true, &c), -1);
    }
}

static void
test_cidr_parse_v4_mapped_prefix(void **state)
{
    (void)state;
    struct cidr c;
    /* A v6-sized prefix on a mapped literal is the v4 prefix + 96. */
    assert_int_equal(cidr("::ffff:192.0.2.0/120", false, &c), 0);
    assert_int_equal(c.net.family, 4);
    assert_int_equal(c.prefix, 24);
    assert_int_equal(cidr("::ffff:192.0.2.7/128", false, &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(cidr("::ffff:0.0.0.0/96", false, &c), 0);
    assert_int_equal(c.prefix, 0);
    assert_int_equal(cidr("::ffff:192.0.2.7", false, &c), 0);
    assert_int_equal(c.prefix, 32);
    /* Prefixes shorter than the mapping cannot be represented. */
    assert_int_equal(cidr("::ffff:192.0.2.0/24", false, &c), -1);
    assert_int_equal(cidr("::ffff:192.0.2.0/95", false, &c), -1);
    assert_int_equal(cidr("::ffff:192.0.2.0/129", false, &c), -1);
    assert_int_equal(cidr("::ffff:192.0.2.7/120", false, &c), -1);
}

/* ---- cidr_match ------------------------------------------------------- */

static void
test_cidr_match_ipv4(void **state)
{
    (void)state;
    struct cidr c;
    assert_int_equal(cidr("192.0.2.0/24", false, &c), 0);
    struct ip_addr in1 = ip("192.0.2.0");
    struct ip_addr in2 = ip("192.0.2.255");
    struct ip_addr out1 = ip("192.0.3.0");
    struct ip_addr out2 = ip("192.0.1.255");
    struct ip_addr v6 = ip("2001:db8::1");
    assert_true(cidr_match(&c, &in1));
    assert_true(cidr_match(&c, &in2));
    assert_false(cidr_match(&c, &out1));
    assert_false(cidr_match(&c, &out2));
    assert_false(cidr_match(&c, &v6));

    assert_int_equal(cidr("192.0.2.1/32", false, &c), 0);
    struct ip_addr h = ip("192.0.2.1");
    struct ip_addr n = ip("192.0.2.2");
    assert_true(cidr_match(&c, &h));
    assert_false(cidr_match(&c, &n));
}

static void
test_cidr_match_prefix_zero_matches_family(void **state)
{
    (void)state;
    struct cidr c4, c6;
    assert_int_equal(cidr("0.0.0.0/0", false, &c4), 0);
    assert_int_equal(cidr("::/0", false, &c6), 0);
    struct ip_addr a = ip("203.0.113.9");
    struct ip_addr b = ip("2001:db8::9");
    assert_true(cidr_match(&c4, &a));
    assert_false(cidr_match(&c4, &b));
    assert_true(cidr_match(&c6, &b));
    assert_false(cidr_match(&c6, &a));
}

static void
test_cidr_match_ipv6(void **state)
{
    (void)state;
    struct cidr c;
    assert_int_equal(cidr("2001:db8::/32", false, &c), 0);
    struct ip_addr a = ip("2001:db8:ffff::1");
    struct ip_addr b = ip("2001:db9::1");
    assert_true(cidr_match(&c, &a));
    assert_false(cidr_match(&c, &b));
    assert_int_equal(cidr("::1/128", false, &c), 0);
    struct ip_addr lo = ip("::1");
    struct ip_addr two = ip("::2");
    assert_true(cidr_match(&c, &lo));
    assert_false(cidr_match(&c, &two));
}

static void
test_cidr_match_v4_mapped_client(void **state)
{
    (void)state;
    struct cidr c;
    assert_int_equal(cidr("192.0.2.0/24", false, &c), 0);
    /* A client on a dual-stack socket: ::ffff:192.0.2.7. */
    struct ip_addr a = ip("::ffff:192.0.2.7");
    struct ip_addr b = ip("::ffff:198.51.100.7");
    assert_true(cidr_match(&c, &a));
    assert_false(cidr_match(&c, &b));
    /* And a mapped CIDR matches plain v4 clients. */
    assert_int_equal(cidr("::ffff:127.0.0.0/104", false, &c), 0);
    struct ip_addr lo = ip("127.1.2.3");
    assert_true(cidr_match(&c, &lo));
}

/* ---- lists ------------------------------------------------------------ */

static void
test_cidr_list_parse_with_spaces(void **state)
{
    (void)state;
    const char *s = " 10.0.0.0/8 ,\t192.0.2.1,  2001:db8::/32\t";
    struct cidr_list l;
    size_t at = 99, bl = 99;
    assert_int_equal(cidr_list_parse(s, strlen(s), &l, &at, &bl), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.v[0].prefix, 8);
    assert_int_equal(l.v[1].prefix, 32);
    assert_int_equal(l.v[2].prefix, 32);
    assert_int_equal(l.v[2].net.family, 6);
    struct ip_addr a = ip("10.20.30.40");
    struct ip_addr b = ip("192.0.2.1");
    struct ip_addr c = ip("192.0.2.2");
    struct ip_addr d = ip("2001:db8::77");
    struct ip_addr e = ip("::ffff:10.1.1.1");
    assert_true(cidr_list_match(&l, &a));
    assert_true(cidr_list_match(&l, &b));
    assert_false(cidr_list_match(&l, &c));
    assert_true(cidr_list_match(&l, &d));
    assert_true(cidr_list_match(&l, &e));
    cidr_list_cleanup(&l);
    assert_null(l.v);
    assert_int_equal(l.n, 0);
}

static void
test_cidr_list_parse_empty_items(void **state)
{
    (void)state;
    struct cidr_list l;
    assert_int_equal(cidr_list_parse("", 0, &l, NULL, NULL), 0);
    assert_int_equal(l.n, 0);
    struct ip_addr a = ip("127.0.0.1");
    assert_false(cidr_list_match(&l, &a));
    cidr_list_cleanup(&l);

    assert_int_equal(cidr_list_parse(S(" , ,\t,"), &l, NULL, NULL), 0);
    assert_int_equal(l.n, 0);
    cidr_list_cleanup(&l);

    assert_int_equal(cidr_list_parse(S(",127.0.0.1,,::1,"), &l, NULL, NULL), 0);
    assert_int_equal(l.n, 2);
    cidr_list_cleanup(&l);
}

static void
test_cidr_list_parse_reports_bad_item_offset(void **state)
{
    (void)state;
    const char *s = "10.0.0.0/8,  bogus item ,::1";
    struct cidr_list l;
    size_t at = 0, bl = 0;
    assert_int_equal(cidr_list_parse(s, strlen(s), &l, &at, &bl), -1);
    assert_int_equal(at, 13);
    assert_int_equal(bl, 10);
    assert_memory_equal(s + at, "bogus item", bl);
    assert_null(l.v);
    assert_int_equal(l.n, 0);

    /* The first item, and a strict-mode host-bits error. */
    s = "192.0.2.1/24,10.0.0.0/8";
    assert_int_equal(cidr_list_parse(s, strlen(s), &l, &at, &bl), -1);
    assert_int_equal(at, 0);
    assert_int_equal(bl, 12);
    assert_null(l.v);

    /* The last item. */
    s = "::1, 10.0.0.0/33";
    assert_int_equal(cidr_list_parse(s, strlen(s), &l, &at, &bl), -1);
    assert_int_equal(at, 5);
    assert_int_equal(bl, 11);

    /* NULL out-pointers are allowed. */
    assert_int_equal(cidr_list_parse(s, strlen(s), &l, NULL, NULL), -1);
    assert_null(l.v);
}

static void
test_cidr_list_parse_stops_at_length(void **state)
{
    (void)state;
    struct cidr_list l;
    /* Only "127.0.0.1" is inside the view. */
    assert_int_equal(cidr_list_parse("127.0.0.1,bogus", 9, &l, NULL, NULL), 0);
    assert_int_equal(l.n, 1);
    cidr_list_cleanup(&l);
}

static void
test_cidr_list_parse_alloc_failure_loop(void **state)
{
    (void)state;
    const char *s = "10.0.0.0/8, 192.0.2.0/24, ::1, 2001:db8::/32";
    bool ok = false;
    for (long n = 0; n < 50 && !ok; n++) {
        struct cidr_list l;
        size_t at = 77, bl = 77;
        emu_alloc_fail_after(n);
        int r = cidr_list_parse(s, strlen(s), &l, &at, &bl);
        emu_alloc_fail_after(-1);
        if (r == 0) {
            ok = true;
            assert_int_equal(l.n, 4);
        } else {
            assert_int_equal(r, -1);
            assert_null(l.v);
            assert_int_equal(l.n, 0);
            assert_true(at < strlen(s));
        }
        cidr_list_cleanup(&l);
    }
    assert_true(ok);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_ip_parse_ipv4),
        cmocka_unit_test(test_cidr_ip_parse_ipv6),
        cmocka_unit_test(test_cidr_ip_parse_folds_v4_mapped),
        cmocka_unit_test(test_cidr_ip_parse_rejects_junk),
        cmocka_unit_test(test_cidr_ip_parse_uses_length_not_nul),
        cmocka_unit_test(test_cidr_ip_format_small_buffer),
        cmocka_unit_test(test_cidr_ip_equal_compares_family),
        cmocka_unit_test(test_cidr_ip_mask_keeps_prefix),
        cmocka_unit_test(test_cidr_parse_ipv4_blocks),
        cmocka_unit_test(test_cidr_parse_bare_address_is_host),
        cmocka_unit_test(test_cidr_parse_ipv6_blocks),
        cmocka_unit_test(test_cidr_parse_rejects_host_bits_unless_lenient),
        cmocka_unit_test(test_cidr_parse_rejects_bad_prefix),
        cmocka_unit_test(test_cidr_parse_v4_mapped_prefix),
        cmocka_unit_test(test_cidr_match_ipv4),
        cmocka_unit_test(test_cidr_match_prefix_zero_matches_family),
        cmocka_unit_test(test_cidr_match_ipv6),
        cmocka_unit_test(test_cidr_match_v4_mapped_client),
        cmocka_unit_test(test_cidr_list_parse_with_spaces),
        cmocka_unit_test(test_cidr_list_parse_empty_items),
        cmocka_unit_test(test_cidr_list_parse_reports_bad_item_offset),
        cmocka_unit_test(test_cidr_list_parse_stops_at_length),
        cmocka_unit_test(test_cidr_list_parse_alloc_failure_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
