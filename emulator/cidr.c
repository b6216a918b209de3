/*
 * cidr: address and CIDR block parsing and matching. Pure; inet_pton and
 * inet_ntop do the textual forms, this file adds prefixes, lists and the
 * IPv4-mapped IPv6 folding.
 */
#include "cidr.h"
#include "util.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int
ip_parse(const char *s, size_t len, struct ip_addr *out)
{
    char tmp[IP_STR_MAX + 1];

    if (len == 0 || len > IP_STR_MAX || memchr(s, '\0', len) != NULL)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, tmp, out->b) == 1) {
        out->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, tmp, out->b) == 1) {
        out->family = 6;
        if (memcmp(out->b, v4mapped, sizeof(v4mapped)) == 0) {
            memmove(out->b, out->b + 12, 4);
            memset(out->b + 4, 0, 12);
            out->family = 4;
        }
        return 0;
    }
    return -1;
}

void
ip_format(const struct ip_addr *a, char *out, size_t cap)
{
    if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->b, out,
                  (socklen_t)cap) == NULL &&
        cap > 0)
        out[0] = '\0';
}

bool
ip_equal(const struct ip_addr *a, const struct ip_addr *b)
{
    return a->family == b->family &&
           memcmp(a->b, b->b, a->family == 4 ? 4 : 16) == 0;
}

void
ip_mask(struct ip_addr *a, unsigned bits)
{
    unsigned total = a->family == 4 ? 32 : 128;
    if (bits > total)
        bits = total;
    for (unsigned i = 0; i < total / 8; i++) {
        unsigned lo = i * 8;
        if (lo >= bits)
            a->b[i] = 0;
        else if (bits - lo < 8)
            a->b[i] &= (uint8_t)(0xff << (8 - (bits - lo)));
    }
}

int
cidr_parse(const char *s, size_t len, bool lenient, struct cidr *out)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;

    memset(out, 0, sizeof(*out));
    if (ip_parse(s, alen, &out->net) < 0)
        return -1;
    unsigned max = out->net.family == 4 ? 32 : 128;
    /* A mapped v6 literal with a v6-sized prefix keeps meaning: fold it. */
    bool mapped = out->net.family == 4 && memchr(s, ':', alen) != NULL;
    if (!slash) {
        out->prefix = max;
        return 0;
    }
    const char *p = slash + 1;
    size_t plen = len - alen - 1;
    if (plen == 0 || plen > 3)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (mapped) {
        if (v < 96 || v > 128)
            return -1;
        v -= 96;
    }
    if (v > max)
        return -1;
    out->prefix = v;
    struct ip_addr masked = out->net;
    ip_mask(&masked, v);
    if (!ip_equal(&masked, &out->net)) {
        if (!lenient)
            return -1;
        out->net = masked;
    }
    return 0;
}

bool
cidr_match(const struct cidr *c, const struct ip_addr *a)
{
    if (c->net.family != a->family)
        return false;
    struct ip_addr m = *a;
    ip_mask(&m, c->prefix);
    return ip_equal(&m, &c->net);
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t';
}

int
cidr_list_parse(const char *s, size_t len, struct cidr_list *out,
                size_t *bad_at, size_t *bad_len)
{
    size_t i = 0;
    out->v = NULL;
    out->n = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        size_t a = start, b = i;
        while (a < b && is_space(s[a]))
            a++;
        while (b > a && is_space(s[b - 1]))
            b--;
        if (b > a) {
            struct cidr c;
            if (cidr_parse(s + a, b - a, false, &c) < 0) {
                if (bad_at)
                    *bad_at = a;
                if (bad_len)
                    *bad_len = b - a;
                cidr_list_cleanup(out);
                return -1;
            }
            struct cidr *nv =
                emu_realloc(out->v, (out->n + 1) * sizeof(*out->v));
            if (nv == NULL) {
                if (bad_at)
                    *bad_at = a;
                if (bad_len)
                    *bad_len = 0;
                cidr_list_cleanup(out);
                return -1;
            }
            out->v = nv;
            out->v[out->n++] = c;
        }
        i++;
    }
    return 0;
}

bool
cidr_list_match(const struct cidr_list *l, const struct ip_addr *a)
{
    for (size_t i = 0; i < l->n; i++)
        if (cidr_match(&l->v[i], a))
            return true;
    return false;
}

void
cidr_list_cleanup(struct cidr_list *l)
{
    emu_free(l->v);
    l->v = NULL;
    l->n = 0;
}
