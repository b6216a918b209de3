/*
 * cidr: IPv4/IPv6 addresses and CIDR blocks: parsing, formatting, matching
 * and comma-separated lists. Pure; used by config (--xclient-from), the
 * session (client address) and the Lua helpers (emu.net). An IPv4-mapped IPv6
 * address (::ffff:192.0.2.1) is treated as the IPv4 address, so a v4 allow
 * list still matches a client that arrived on a dual-stack socket.
 */
#ifndef EMU_CIDR_H
#define EMU_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IP_STR_MAX 46 /* INET6_ADDRSTRLEN */

struct ip_addr {
    int family; /* 4 or 6 */
    uint8_t b[16];
};

struct cidr {
    struct ip_addr net;
    unsigned prefix;
};

struct cidr_list {
    struct cidr *v;
    size_t n;
};

/* Parse a literal address (no brackets, no port); 0 or -1. */
int ip_parse(const char *s, size_t len, struct ip_addr *out);
/* Format into `out` (at least IP_STR_MAX bytes). */
void ip_format(const struct ip_addr *a, char *out, size_t cap);
bool ip_equal(const struct ip_addr *a, const struct ip_addr *b);
/* Keep the first `bits` bits, zero the rest (the /24 of greylisting). */
void ip_mask(struct ip_addr *a, unsigned bits);

/* "192.0.2.0/24", "2001:db8::/32" or a bare address (host prefix); the
 * host bits must be zero unless `lenient`, in which case they are cleared. */
int cidr_parse(const char *s, size_t len, bool lenient, struct cidr *out);
bool cidr_match(const struct cidr *c, const struct ip_addr *a);

/* Comma-separated list, spaces around items allowed. On error returns -1 and
 * sets *bad_at and *bad_len to the offending item. Returns owned memory in
 * out->v: free with cidr_list_cleanup(). */
int cidr_list_parse(const char *s, size_t len, struct cidr_list *out,
                    size_t *bad_at, size_t *bad_len);
bool cidr_list_match(const struct cidr_list *l, const struct ip_addr *a);
void cidr_list_cleanup(struct cidr_list *l);

#endif
