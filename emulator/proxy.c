/*
 * proxy: PROXY protocol v1/v2 header parsing. Pure. Strict where the
 * specification is strict (exact spaces, CRLF, no leading zeroes in ports),
 * because a malformed header must abort the connection, not be guessed at.
 */
#include "proxy.h"

#include <string.h>

static const unsigned char v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

const char *
proxy_result_name(enum proxy_result r)
{
    switch (r) {
    case PROXY_OK:
        return "PROXY_OK";
    case PROXY_INCOMPLETE:
        return "PROXY_INCOMPLETE";
    case PROXY_INVALID:
        return "PROXY_INVALID";
    }
    return "?";
}

static int
parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;
    if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* Split the next space-terminated field; returns its length or -1. */
static long
field(const char *s, size_t len, size_t *pos, bool last)
{
    size_t start = *pos;
    while (*pos < len && s[*pos] != ' ')
        (*pos)++;
    if (*pos == start)
        return -1;
    long n = (long)(*pos - start);
    if (last) {
        if (*pos != len)
            return -1;
    } else {
        if (*pos == len)
            return -1;
        (*pos)++; /* exactly one space */
    }
    return n;
}

static enum proxy_result
parse_v1(const unsigned char *buf, size_t len, struct proxy_info *out)
{
    size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    const unsigned char *cr = NULL;
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] == '\r' && i + 1 < scan && buf[i + 1] == '\n') {
            cr = buf + i;
            break;
        }
        /* A final CR may still get its LF; a bare LF or NUL never fits. */
        if (buf[i] == '\n' || buf[i] == '\0' ||
            (buf[i] == '\r' && i + 1 < scan))
            return PROXY_INVALID;
    }
    if (cr == NULL)
        return len >= PROXY_V1_MAX ? PROXY_INVALID : PROXY_INCOMPLETE;
    const char *s = (const char *)buf;
    size_t n = (size_t)(cr - buf);
    out->version = 1;
    out->header_len = n + 2;
    if (n >= 13 && memcmp(s, "PROXY UNKNOWN", 13) == 0 &&
        (n == 13 || s[13] == ' ')) {
        out->has_addresses = false;
        return PROXY_OK;
    }
    int fam;
    if (n > 11 && memcmp(s, "PROXY TCP4 ", 11) == 0)
        fam = 4;
    else if (n > 11 && memcmp(s, "PROXY TCP6 ", 11) == 0)
        fam = 6;
    else
        return PROXY_INVALID;
    size_t pos = 11;
    size_t a0 = pos;
    long al = field(s, n, &pos, false);
    size_t b0 = pos;
    long bl = al < 0 ? -1 : field(s, n, &pos, false);
    size_t c0 = pos;
    long cl = bl < 0 ? -1 : field(s, n, &pos, false);
    size_t d0 = pos;
    long dl = cl < 0 ? -1 : field(s, n, &pos, true);
    if (dl < 0)
        return PROXY_INVALID;
    if (ip_parse(s + a0, (size_t)al, &out->src) < 0 ||
        ip_parse(s + b0, (size_t)bl, &out->dst) < 0)
        return PROXY_INVALID;
    /* The family must match the literal (a mapped v6 folds to 4). */
    bool v6lit = memchr(s + a0, ':', (size_t)al) != NULL;
    bool v6dst = memchr(s + b0, ':', (size_t)bl) != NULL;
    if ((fam == 4) == v6lit || v6lit != v6dst)
        return PROXY_INVALID;
    if (parse_port(s + c0, (size_t)cl, &out->src_port) < 0 ||
        parse_port(s + d0, (size_t)dl, &out->dst_port) < 0)
        return PROXY_INVALID;
    out->has_addresses = true;
    return PROXY_OK;
}

static enum proxy_result
parse_v2(const unsigned char *buf, size_t len, struct proxy_info *out)
{
    if (len < PROXY_V2_HEADER)
        return PROXY_INCOMPLETE;
    unsigned ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
    unsigned fam = buf[13] >> 4, proto = buf[13] & 0x0f;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (ver != 2 || cmd > 1)
        return PROXY_INVALID;
    if (len < PROXY_V2_HEADER + body)
        return PROXY_INCOMPLETE;
    out->version = 2;
    out->header_len = PROXY_V2_HEADER + body;
    out->has_addresses = false;
    if (cmd == 0) /* LOCAL: health check from the proxy itself */
        return PROXY_OK;
    const unsigned char *a = buf + PROXY_V2_HEADER;
    if (fam == 1 && proto == 1) { /* TCP over IPv4 */
        if (body < 12)
            return PROXY_INVALID;
        memset(&out->src, 0, sizeof(out->src));
        memset(&out->dst, 0, sizeof(out->dst));
        out->src.family = out->dst.family = 4;
        memcpy(out->src.b, a, 4);
        memcpy(out->dst.b, a + 4, 4);
        out->src_port = (uint16_t)(a[8] << 8 | a[9]);
        out->dst_port = (uint16_t)(a[10] << 8 | a[11]);
        out->has_addresses = true;
    } else if (fam == 2 && proto == 1) { /* TCP over IPv6 */
        if (body < 36)
            return PROXY_INVALID;
        char tmp[IP_STR_MAX];
        struct ip_addr x;
        memset(&x, 0, sizeof(x));
        x.family = 6;
        memcpy(x.b, a, 16);
        ip_format(&x, tmp, sizeof(tmp));
        if (ip_parse(tmp, strlen(tmp), &out->src) < 0)
            return PROXY_INVALID;
        memcpy(x.b, a + 16, 16);
        ip_format(&x, tmp, sizeof(tmp));
        if (ip_parse(tmp, strlen(tmp), &out->dst) < 0)
            return PROXY_INVALID;
        out->src_port = (uint16_t)(a[32] << 8 | a[33]);
        out->dst_port = (uint16_t)(a[34] << 8 | a[35]);
        out->has_addresses = true;
    } else if (fam > 3 || proto > 2) {
        return PROXY_INVALID;
    }
    /* Other families (UNSPEC, UNIX) and TLVs: use the real addresses. */
    return PROXY_OK;
}

enum proxy_result
proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *out)
{
    memset(out, 0, sizeof(*out));
    size_t cmp = len < sizeof(v2sig) ? len : sizeof(v2sig);
    if (memcmp(buf, v2sig, cmp) == 0) {
        if (len < sizeof(v2sig))
            return PROXY_INCOMPLETE;
        return parse_v2(buf, len, out);
    }
    cmp = len < 6 ? len : 6;
    if (memcmp(buf, "PROXY ", cmp) != 0)
        return PROXY_INVALID;
    if (len < 6)
        return PROXY_INCOMPLETE;
    return parse_v1(buf, len, out);
}
