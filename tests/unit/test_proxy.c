/*
 * test_proxy: PROXY protocol v1 (text) and v2 (binary) headers, valid,
 * incomplete and invalid, as in HAProxy's doc/proxy-protocol.txt.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proxy.h"
#include "util.h"

static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static enum proxy_result
parse(const char *s, struct proxy_info *pi)
{
    return proxy_parse((const unsigned char *)s, strlen(s), pi);
}

static void
addr_is(const struct ip_addr *a, const char *want)
{
    char out[IP_STR_MAX];
    ip_format(a, out, sizeof(out));
    assert_string_equal(out, want);
}

/* A v2 header: signature, version/command, family/protocol, length, body. */
static size_t
v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam,
   const unsigned char *body, size_t blen)
{
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (unsigned char)(blen >> 8);
    out[15] = (unsigned char)blen;
    if (blen)
        memcpy(out + 16, body, blen);
    return 16 + blen;
}

static const unsigned char body4[12] = {192, 0, 2,    1,    198, 51,
                                        100, 2, 0xdc, 0x04, 0,   25};

/* ---- v1 --------------------------------------------------------------- */

static void
test_proxy_v1_tcp4(void **state)
{
    (void)state;
    struct proxy_info pi;
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";
    assert_int_equal(parse(h, &pi), PROXY_OK);
    assert_int_equal(pi.version, 1);
    assert_true(pi.has_addresses);
    assert_int_equal(pi.src.family, 4);
    assert_int_equal(pi.dst.family, 4);
    addr_is(&pi.src, "192.0.2.1");
    addr_is(&pi.dst, "198.51.100.2");
    assert_int_equal(pi.src_port, 56324);
    assert_int_equal(pi.dst_port, 25);
    assert_int_equal(pi.header_len, strlen(h));
}

static void
test_proxy_v1_leaves_following_bytes(void **state)
{
    (void)state;
    struct proxy_info pi;
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\nEHLO x\r\n";
    assert_int_equal(parse(h, &pi), PROXY_OK);
    assert_int_equal(pi.header_len, strlen(h) - 8);
    assert_int_equal(pi.src_port, 1);
    assert_int_equal(pi.dst_port, 2);
}

static void
test_proxy_v1_tcp6(void **state)
{
    (void)state;
    struct proxy_info pi;
    const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
    assert_int_equal(parse(h, &pi), PROXY_OK);
    assert_int_equal(pi.version, 1);
    assert_true(pi.has_addresses);
    assert_int_equal(pi.src.family, 6);
    addr_is(&pi.src, "2001:db8::1");
    addr_is(&pi.dst, "2001:db8::2");
    assert_int_equal(pi.src_port, 65535);
    assert_int_equal(pi.dst_port, 0);
    assert_int_equal(pi.header_len, strlen(h));
}

static void
test_proxy_v1_tcp6_mapped_folds_to_v4(void **state)
{
    (void)state;
    struct proxy_info pi;
    assert_int_equal(
        parse("PROXY TCP6 ::ffff:192.0.2.9 ::ffff:192.0.2.10 1000 25\r\n", &pi),
        PROXY_OK);
    assert_int_equal(pi.src.family, 4);
    addr_is(&pi.src, "192.0.2.9");
    addr_is(&pi.dst, "192.0.2.10");
}

static void
test_proxy_v1_longest_header(void **state)
{
    (void)state;
    /* The worst case of the specification: 107 bytes with CRLF. */
    const char *h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(h), 104);
    struct proxy_info pi;
    assert_int_equal(parse(h, &pi), PROXY_OK);
    assert_int_equal(pi.header_len, 104);

    /* A 107-byte UNKNOWN line is still accepted. */
    char u[PROXY_V1_MAX + 1];
    memcpy(u, "PROXY UNKNOWN ", 14);
    memset(u + 14, 'x', PROXY_V1_MAX - 16);
    memcpy(u + PROXY_V1_MAX - 2, "\r\n", 3);
    assert_int_equal(strlen(u), PROXY_V1_MAX);
    assert_int_equal(parse(u, &pi), PROXY_OK);
    assert_int_equal(pi.header_len, PROXY_V1_MAX);
}

static void
test_proxy_v1_unknown(void **state)
{
    (void)state;
    struct proxy_info pi;
    assert_int_equal(parse("PROXY UNKNOWN\r\n", &pi), PROXY_OK);
    assert_int_equal(pi.version, 1);
    assert_false(pi.has_addresses);
    assert_int_equal(pi.header_len, 15);
    /* Whatever follows UNKNOWN is ignored. */
    const char *h = "PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\nQUIT\r\n";
    assert_int_equal(parse(h, &pi), PROXY_OK);
    assert_false(pi.has_addresses);
    assert_int_equal(pi.header_len, strlen(h) - 6);
    assert_int_equal(parse("PROXY UNKNOWNX\r\n", &pi), PROXY_INVALID);
    assert_int_equal(parse("PROXY unknown\r\n", &pi), PROXY_INVALID);
}

static void
test_proxy_v1_incomplete_prefixes(void **state)
{
    (void)state;
    static const char *hdrs[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n",
        "PROXY UNKNOWN\r\n",
    };
    for (size_t k = 0; k < EMU_ARRAY_LEN(hdrs); k++) {
        size_t len = strlen(hdrs[k]);
        for (size_t n = 0; n < len; n++) {
            struct proxy_info pi;
            assert_int_equal(
                proxy_parse((const unsigned char *)hdrs[k], n, &pi),
                PROXY_INCOMPLETE);
        }
        struct proxy_info pi;
        assert_int_equal(proxy_parse((const unsigned char *)hdrs[k], len, &pi),
                         PROXY_OK);
    }
}

static void
test_proxy_v1_missing_crlf_within_107_bytes(void **state)
{
    (void)state;
    char buf[200];
    memcpy(buf, "PROXY TCP4 ", 11);
    memset(buf + 11, '1', sizeof(buf) - 11);
    struct proxy_info pi;
    const unsigned char *b = (const unsigned char *)buf;
    assert_int_equal(proxy_parse(b, PROXY_V1_MAX - 1, &pi), PROXY_INCOMPLETE);
    assert_int_equal(proxy_parse(b, PROXY_V1_MAX, &pi), PROXY_INVALID);
    assert_int_equal(proxy_parse(b, sizeof(buf), &pi), PROXY_INVALID);
    /* A CRLF just past the limit does not count. */
    memcpy(buf + PROXY_V1_MAX - 1, "\r\n", 2);
    assert_int_equal(proxy_parse(b, PROXY_V1_MAX + 1, &pi), PROXY_INVALID);
}

static void
test_proxy_v1_rejects_bad_line_endings(void **state)
{
    (void)state;
    struct proxy_info pi;
    assert_int_equal(parse("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", &pi),
                     PROXY_INVALID);
    assert_int_equal(parse("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX", &pi),
                     PROXY_INVALID);
    assert_int_equal(parse("PROXY UNKNOWN\n\r\n", &pi), PROXY_INVALID);
    /* Known bad as soon as the byte arrives, without waiting for more. */
    assert_int_equal(parse("PROXY UNKNOWN\n", &pi), PROXY_INVALID);
    assert_int_equal(proxy_parse((const unsigned char *)"PROXY \0", 7, &pi),
                     PROXY_INVALID);
    assert_int_equal(parse("PROXY UNKNOWN\r", &pi), PROXY_INCOMPLETE);
    assert_int_equal(
        proxy_parse((const unsigned char *)"PROXY TCP4 \0 x\r\n", 16, &pi),
        PROXY_INVALID);
}

static void
test_proxy_v1_rejects_leading_zero_in_port(void **state)
{
    (void)state;
    struct proxy_info pi;
    assert_int_equal(
        parse("PROXY TCP4 192.0.2.1 198.51.100.2 056324 25\r\n", &pi),
        PROXY_INVALID);
    assert_int_equal(parse("PROXY TCP4 192.0.2.1 198.51.100.2 1 025\r\n", &pi),
                     PROXY_INVALID);
    assert_int_equal(parse("PROXY TCP4 192.0.2.1 198.51.100.2 00 25\r\n", &pi),
                     PROXY_INVALID);
    assert_int_equal(parse("PROXY TCP4 192.0.2.1 198.51.100.2 0 25\r\n", &pi),
                     PROXY_OK);
}

static void
test_proxy_v1_rejects_bad_ports(void **state)
{
    (void)state;
    static const char *bad[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 99999 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 123456 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 +1 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1a 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 0x19\r\n",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct proxy_info pi;
        assert_int_equal(parse(bad[i], &pi), PROXY_INVALID);
    }
}

static void
test_proxy_v1_rejects_bad_fields(void **state)
{
    (void)state;
    static const char *bad[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",     /* 3 fields */
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", /* 5 fields */
        "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n",  /* two spaces */
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",  /* trailing */
        "PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY TCP4\r\n",
        "PROXY TCP4 \r\n",
        "PROXY \r\n",
        "PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1 example.com 1 2\r\n",
        "PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::g 1 2\r\n",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct proxy_info pi;
        assert_int_equal(parse(bad[i], &pi), PROXY_INVALID);
    }
}

static void
test_proxy_v1_rejects_family_mismatch(void **state)
{
    (void)state;
    static const char *bad[] = {
        "PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n",
        "PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY TCP4 ::ffff:192.0.2.1 198.51.100.2 1 2\r\n",
        /* The destination must match too. */
        "PROXY TCP4 192.0.2.1 2001:db8::2 1 2\r\n",
        "PROXY TCP4 192.0.2.1 ::ffff:198.51.100.2 1 2\r\n",
        "PROXY TCP6 2001:db8::1 198.51.100.2 1 2\r\n",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        struct proxy_info pi;
        assert_int_equal(parse(bad[i], &pi), PROXY_INVALID);
    }
}

static void
test_proxy_rejects_other_protocols(void **state)
{
    (void)state;
    struct proxy_info pi;
    assert_int_equal(parse("EHLO client.example\r\n", &pi), PROXY_INVALID);
    assert_int_equal(parse("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", &pi),
                     PROXY_INVALID);
    assert_int_equal(parse("PROXYTCP4\r\n", &pi), PROXY_INVALID);
    assert_int_equal(parse("GET / HTTP/1.0\r\n", &pi), PROXY_INVALID);
    assert_int_equal(parse("X", &pi), PROXY_INVALID);
    assert_int_equal(parse("PRX", &pi), PROXY_INVALID);
    /* Starts like the v2 signature, then differs. */
    assert_int_equal(parse("\r\n\r\nX", &pi), PROXY_INVALID);
    assert_int_equal(parse("\r\n", &pi), PROXY_INCOMPLETE);
}

static void
test_proxy_result_names(void **state)
{
    (void)state;
    assert_string_equal(proxy_result_name(PROXY_OK), "PROXY_OK");
    assert_string_equal(proxy_result_name(PROXY_INCOMPLETE),
                        "PROXY_INCOMPLETE");
    assert_string_equal(proxy_result_name(PROXY_INVALID), "PROXY_INVALID");
    assert_string_equal(proxy_result_name((enum proxy_result)9), "?");
}

/* ---- v2 --------------------------------------------------------------- */

static void
test_proxy_v2_proxy_tcp4(void **state)
{
    (void)state;
    unsigned char h[64];
    size_t n = v2(h, 0x21, 0x11, body4, sizeof(body4));
    memcpy(h + n, "EHLO", 4);
    struct proxy_info pi;
    assert_int_equal(proxy_parse(h, n + 4, &pi), PROXY_OK);
    assert_int_equal(pi.version, 2);
    assert_true(pi.has_addresses);
    assert_int_equal(pi.header_len, 28);
    assert_int_equal(pi.src.family, 4);
    addr_is(&pi.src, "192.0.2.1");
    addr_is(&pi.dst, "198.51.100.2");
    assert_int_equal(pi.src_port, 56324);
    assert_int_equal(pi.dst_port, 25);
}

static void
test_proxy_v2_proxy_tcp6(void **state)
{
    (void)state;
    unsigned char body[36] = {0};
    body[0] = 0x20;
    body[1] = 0x01;
    body[2] = 0x0d;
    body[3] = 0xb8;
    body[15] = 1;
    body[16] = 0x20;
    body[17] = 0x01;
    body[18] = 0x0d;
    body[19] = 0xb8;
    body[31] = 2;
    body[32] = 0xff;
    body[33] = 0xff;
    body[34] = 0x01;
    body[35] = 0xbb;
    unsigned char h[64];
    size_t n = v2(h, 0x21, 0x21, body, sizeof(body));
    struct proxy_info pi;
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_OK);
    assert_int_equal(pi.version, 2);
    assert_true(pi.has_addresses);
    assert_int_equal(pi.header_len, 52);
    assert_int_equal(pi.src.family, 6);
    addr_is(&pi.src, "2001:db8::1");
    addr_is(&pi.dst, "2001:db8::2");
    assert_int_equal(pi.src_port, 65535);
    assert_int_equal(pi.dst_port, 443);
}

static void
test_proxy_v2_tcp6_mapped_folds_to_v4(void **state)
{
    (void)state;
    unsigned char body[36] = {0};
    body[10] = body[11] = 0xff;
    body[12] = 192;
    body[13] = 0;
    body[14] = 2;
    body[15] = 7;
    body[31] = 1; /* dst ::1 */
    unsigned char h[64];
    size_t n = v2(h, 0x21, 0x21, body, sizeof(body));
    struct proxy_info pi;
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_OK);
    assert_int_equal(pi.src.family, 4);
    addr_is(&pi.src, "192.0.2.7");
    assert_int_equal(pi.dst.family, 6);
    addr_is(&pi.dst, "::1");
}

static void
test_proxy_v2_local(void **state)
{
    (void)state;
    unsigned char h[64];
    size_t n = v2(h, 0x20, 0x00, NULL, 0);
    struct proxy_info pi;
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_OK);
    assert_int_equal(pi.version, 2);
    assert_false(pi.has_addresses);
    assert_int_equal(pi.header_len, 16);
    /* LOCAL may still carry addresses: skipped, not used. */
    n = v2(h, 0x20, 0x11, body4, sizeof(body4));
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_OK);
    assert_false(pi.has_addresses);
    assert_int_equal(pi.header_len, 28);
}

static void
test_proxy_v2_tlvs_after_addresses(void **state)
{
    (void)state;
    unsigned char body[12 + 7 + 4];
    memcpy(body, body4, 12);
    /* PP2_TYPE_AUTHORITY "mx.ex" and PP2_TYPE_NOOP with one byte. */
    const unsigned char tlvs[] = {0x02, 0x00, 0x04, 'm',  'x', '.',
                                  'e',  0x04, 0x00, 0x01, 0x00};
    memcpy(body + 12, tlvs, sizeof(tlvs));
    unsigned char h[64];
    size_t n = v2(h, 0x21, 0x11, body, 12 + sizeof(tlvs));
    memcpy(h + n, "EHLO", 4);
    struct proxy_info pi;
    assert_int_equal(proxy_parse(h, n + 4, &pi), PROXY_OK);
    assert_true(pi.has_addresses);
    assert_int_equal(pi.header_len, 16 + 12 + sizeof(tlvs));
    addr_is(&pi.src, "192.0.2.1");
    assert_int_equal(pi.dst_port, 25);
}

static void
test_proxy_v2_unspec_udp_and_unix(void **state)
{
    (void)state;
    unsigned char h[300];
    unsigned char body[216] = {0};
    struct proxy_info pi;
    size_t n = v2(h, 0x21, 0x00, NULL, 0); /* UNSPEC */
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_OK);
    assert_false(pi.has_addresses);
    n = v2(h, 0x21, 0x12, body4, sizeof(body4)); /* UDP over IPv4 */
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_OK);
    assert_false(pi.has_addresses);
    assert_int_equal(pi.header_len, 28);
    n = v2(h, 0x21, 0x31, body, sizeof(body)); /* UNIX stream */
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_OK);
    assert_false(pi.has_addresses);
    assert_int_equal(pi.header_len, 16 + 216);
}

static void
test_proxy_v2_truncated_is_incomplete(void **state)
{
    (void)state;
    unsigned char h[64];
    size_t n = v2(h, 0x21, 0x11, body4, sizeof(body4));
    for (size_t k = 0; k < n; k++) {
        struct proxy_info pi;
        assert_int_equal(proxy_parse(h, k, &pi), PROXY_INCOMPLETE);
    }
    /* A length field promising more than arrived. */
    h[15] = 200;
    struct proxy_info pi;
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INCOMPLETE);
}

static void
test_proxy_v2_rejects_bad_version(void **state)
{
    (void)state;
    unsigned char h[64];
    struct proxy_info pi;
    static const unsigned char bad_vc[] = {0x11, 0x31, 0x01, 0xf1,
                                           0x22, 0x2f, 0x00};
    for (size_t i = 0; i < sizeof(bad_vc); i++) {
        size_t n = v2(h, bad_vc[i], 0x11, body4, sizeof(body4));
        assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
        /* Known bad from the fixed part alone. */
        assert_int_equal(proxy_parse(h, 16, &pi), PROXY_INVALID);
    }
}

static void
test_proxy_v2_rejects_bad_family_and_short_bodies(void **state)
{
    (void)state;
    unsigned char h[128];
    unsigned char body[64] = {0};
    struct proxy_info pi;
    size_t n = v2(h, 0x21, 0x41, body, 12); /* family 4 */
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
    n = v2(h, 0x21, 0x13, body, 12); /* protocol 3 */
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
    n = v2(h, 0x21, 0x11, body, 11); /* TCP4 needs 12 bytes */
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
    n = v2(h, 0x21, 0x11, body, 0);
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
    n = v2(h, 0x21, 0x21, body, 35); /* TCP6 needs 36 bytes */
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
    n = v2(h, 0x21, 0x21, body, 12);
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
}

static void
test_proxy_v2_signature_mismatch(void **state)
{
    (void)state;
    unsigned char h[64];
    size_t n = v2(h, 0x21, 0x11, body4, sizeof(body4));
    h[11] = 0x0B; /* last signature byte wrong */
    struct proxy_info pi;
    assert_int_equal(proxy_parse(h, n, &pi), PROXY_INVALID);
    assert_int_equal(proxy_parse(h, 11, &pi), PROXY_INCOMPLETE);
    assert_int_equal(proxy_parse(h, 12, &pi), PROXY_INVALID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_v1_tcp4),
        cmocka_unit_test(test_proxy_v1_leaves_following_bytes),
        cmocka_unit_test(test_proxy_v1_tcp6),
        cmocka_unit_test(test_proxy_v1_tcp6_mapped_folds_to_v4),
        cmocka_unit_test(test_proxy_v1_longest_header),
        cmocka_unit_test(test_proxy_v1_unknown),
        cmocka_unit_test(test_proxy_v1_incomplete_prefixes),
        cmocka_unit_test(test_proxy_v1_missing_crlf_within_107_bytes),
        cmocka_unit_test(test_proxy_v1_rejects_bad_line_endings),
        cmocka_unit_test(test_proxy_v1_rejects_leading_zero_in_port),
        cmocka_unit_test(test_proxy_v1_rejects_bad_ports),
        cmocka_unit_test(test_proxy_v1_rejects_bad_fields),
        cmocka_unit_test(test_proxy_v1_rejects_family_mismatch),
        cmocka_unit_test(test_proxy_rejects_other_protocols),
        cmocka_unit_test(test_proxy_result_names),
        cmocka_unit_test(test_proxy_v2_proxy_tcp4),
        cmocka_unit_test(test_proxy_v2_proxy_tcp6),
        cmocka_unit_test(test_proxy_v2_tcp6_mapped_folds_to_v4),
        cmocka_unit_test(test_proxy_v2_local),
        cmocka_unit_test(test_proxy_v2_tlvs_after_addresses),
        cmocka_unit_test(test_proxy_v2_unspec_udp_and_unix),
        cmocka_unit_test(test_proxy_v2_truncated_is_incomplete),
        cmocka_unit_test(test_proxy_v2_rejects_bad_version),
        cmocka_unit_test(test_proxy_v2_rejects_bad_family_and_short_bodies),
        cmocka_unit_test(test_proxy_v2_signature_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
