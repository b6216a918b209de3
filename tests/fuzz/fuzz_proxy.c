/*
 * fuzz_proxy: the first bytes of a connection on a --proxy-protocol
 * listener, through proxy_parse (PROXY v1 text and v2 binary). Invariants:
 * a complete header never claims more bytes than it was given; v1 stays
 * within its 107 bytes; the header parses the same on its own; every
 * shorter prefix of a valid header is INCOMPLETE (the session waits for
 * more rather than rejecting a header that is still arriving); and an
 * INCOMPLETE answer is never given for more bytes than a header can hold.
 */
#include <string.h>

#include "fuzz.h"
#include "proxy.h"

static void
same(const struct proxy_info *a, const struct proxy_info *b)
{
    FUZZ_ASSERT(a->version == b->version);
    FUZZ_ASSERT(a->has_addresses == b->has_addresses);
    FUZZ_ASSERT(a->header_len == b->header_len);
    if (a->has_addresses) {
        FUZZ_ASSERT(ip_equal(&a->src, &b->src));
        FUZZ_ASSERT(ip_equal(&a->dst, &b->dst));
        FUZZ_ASSERT(a->src_port == b->src_port);
        FUZZ_ASSERT(a->dst_port == b->dst_port);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_info info, again;
    enum proxy_result r = proxy_parse(data, size, &info);
    (void)proxy_result_name(r);
    if (r == PROXY_INCOMPLETE) {
        FUZZ_ASSERT(size < PROXY_V2_HEADER + 65535);
        return 0;
    }
    if (r != PROXY_OK)
        return 0;
    FUZZ_ASSERT(info.version == 1 || info.version == 2);
    FUZZ_ASSERT(info.header_len > 0 && info.header_len <= size);
    if (info.version == 1)
        FUZZ_ASSERT(info.header_len <= PROXY_V1_MAX);
    else
        FUZZ_ASSERT(info.header_len >= PROXY_V2_HEADER);
    if (info.has_addresses) {
        FUZZ_ASSERT(info.src.family == 4 || info.src.family == 6);
        FUZZ_ASSERT(info.dst.family == 4 || info.dst.family == 6);
        char txt[IP_STR_MAX];
        ip_format(&info.src, txt, sizeof(txt));
        FUZZ_ASSERT(txt[0] != '\0');
    }

    /* The header alone, in an exact-size copy, parses the same. */
    uint8_t *h = malloc(info.header_len);
    FUZZ_ASSERT(h != NULL);
    memcpy(h, data, info.header_len);
    FUZZ_ASSERT(proxy_parse(h, info.header_len, &again) == PROXY_OK);
    same(&info, &again);

    /* Shorter prefixes: still arriving. All of them for v1 and short v2
     * headers, a sample for long v2 ones. */
    size_t n = info.header_len;
    for (size_t k = 0; k < n; k++) {
        if (n > 256 && k > 64 && k < n - 64 && k % 997 != 0)
            continue;
        FUZZ_ASSERT(proxy_parse(h, k, &again) == PROXY_INCOMPLETE);
    }
    free(h);
    return 0;
}
