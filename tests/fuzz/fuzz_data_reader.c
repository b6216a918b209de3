/*
 * fuzz_data_reader: a DATA body fed to data_reader in pieces. The first
 * byte picks the size limit, the next four the split points; the rest is
 * the body. The same body is also fed in one piece, and both runs must
 * agree on everything (bytes may arrive split anywhere). Invariants: a feed
 * stops short only at the end of the data, a finished reader takes no more
 * bytes, the output is never longer than what was consumed nor than the
 * limit, and the data ends exactly at a "<CR><LF>.<CR><LF>" (or a ".<CR><LF>"
 * as the very first line), and both match an independent line-by-line
 * reading of the rules (the oracle below).
 */
#include <string.h>

#include "data_reader.h"
#include "fuzz.h"

struct run {
    struct buf out;
    struct data_reader r;
    size_t consumed;
};

static void
feed_all(struct run *x, const char *p, size_t len, const size_t *cuts,
         size_t n_cuts, uint64_t max)
{
    memset(&x->out, 0, sizeof(x->out));
    data_reader_init(&x->r, &x->out, max);
    x->consumed = 0;
    size_t pos = 0;
    for (size_t c = 0; c <= n_cuts; c++) {
        size_t end = c < n_cuts ? cuts[c] : len;
        if (end < pos)
            end = pos;
        size_t n = end - pos;
        bool was_done = data_reader_done(&x->r);
        size_t used = data_reader_feed(&x->r, p + pos, n);
        FUZZ_ASSERT(used <= n);
        if (was_done)
            FUZZ_ASSERT(used == 0); /* a finished reader takes nothing */
        if (used < n)
            FUZZ_ASSERT(data_reader_done(&x->r));
        x->consumed += used;
        pos = end;
        (void)data_reader_state_name(x->r.state);
        /* Output never outgrows the input or the limit. */
        FUZZ_ASSERT(x->out.len <= x->consumed);
        FUZZ_ASSERT(x->out.len <= max);
        FUZZ_ASSERT(x->r.size >= x->out.len);
    }
    if (!data_reader_done(&x->r))
        FUZZ_ASSERT(x->consumed == len);
    FUZZ_ASSERT(x->r.overflow == (x->r.size > max));
    if (!x->r.overflow && !x->r.nomem)
        FUZZ_ASSERT(x->r.size == x->out.len);
    /* Once done, more input is refused. */
    if (data_reader_done(&x->r))
        FUZZ_ASSERT(data_reader_feed(&x->r, "x\r\n.\r\n", 6) == 0);
}

/*
 * A line-at-a-time reading of the rules in data_reader.h, written
 * independently of the state machine: lines end at LF; a line "." ended by
 * CRLF after a CRLF-ended line (or first) ends the data; a "." line ended
 * by a bare LF, or by CRLF after a bare-LF line, is dropped; a leading dot
 * is removed; a last line without its LF is kept without a trailing CR
 * (the reader holds that CR until it knows what follows).
 */
struct oracle {
    struct buf out;
    size_t consumed;
    bool done;
    unsigned flags;
};

static void
oracle_run(struct oracle *o, const char *p, size_t len)
{
    memset(o, 0, sizeof(*o));
    bool prev_crlf = true;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(p + i, '\n', len - i);
        if (nl == NULL) {
            size_t a = i, b = len;
            if (p[a] == '.')
                a++;
            if (b > a && p[b - 1] == '\r')
                b--;
            if (b > a)
                FUZZ_ASSERT(buf_append(&o->out, p + a, b - a) == 0);
            i = len;
            break;
        }
        size_t j = (size_t)(nl - p);
        bool crlf = j > i && p[j - 1] == '\r';
        size_t n = j + 1 - i;
        if (!crlf)
            o->flags |= DR_SAW_BARE_LF;
        if (n == 3 && p[i] == '.' && crlf) {
            i = j + 1;
            if (prev_crlf) {
                o->done = true;
                break;
            }
            prev_crlf = true;
            continue;
        }
        if (n == 2 && p[i] == '.') {
            i = j + 1;
            prev_crlf = false;
            continue;
        }
        size_t a = p[i] == '.' ? i + 1 : i;
        FUZZ_ASSERT(buf_append(&o->out, p + a, j + 1 - a) == 0);
        prev_crlf = crlf;
        i = j + 1;
    }
    o->consumed = i;
    for (size_t k = 0; k < o->consumed; k++) {
        if (p[k] == '\0')
            o->flags |= DR_SAW_NUL;
        if (p[k] == '\r' && k + 1 < o->consumed && p[k + 1] != '\n')
            o->flags |= DR_SAW_BARE_CR;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t limits[] = {0, 1, 2, 5, 16, 100, 1000, UINT64_MAX};
    if (size < 5)
        return 0;
    uint64_t max = limits[data[0] % EMU_ARRAY_LEN(limits)];
    const char *body = (const char *)data + 5;
    size_t len = size - 5;
    size_t cuts[4];
    for (size_t i = 0; i < 4; i++)
        cuts[i] = len ? data[1 + i] * len / 255 : 0;
    /* Sorted split points (feed_all clamps, so order only matters for
     * coverage of zero-length feeds). */
    for (size_t i = 1; i < 4; i++)
        for (size_t k = i; k > 0 && cuts[k - 1] > cuts[k]; k--) {
            size_t t = cuts[k];
            cuts[k] = cuts[k - 1];
            cuts[k - 1] = t;
        }

    struct run split, whole, bytes;
    feed_all(&split, body, len, cuts, 4, max);
    feed_all(&whole, body, len, NULL, 0, max);
    FUZZ_ASSERT(split.consumed == whole.consumed);
    FUZZ_ASSERT(split.r.state == whole.r.state);
    FUZZ_ASSERT(split.r.flags == whole.r.flags);
    FUZZ_ASSERT(split.r.size == whole.r.size);
    FUZZ_ASSERT(split.r.overflow == whole.r.overflow);
    FUZZ_ASSERT(split.out.len == whole.out.len);
    FUZZ_ASSERT(split.out.len == 0 ||
                memcmp(split.out.data, whole.out.data, split.out.len) == 0);

    /* One byte at a time, for short bodies (the slow-loris client). */
    if (len <= 512) {
        memset(&bytes.out, 0, sizeof(bytes.out));
        data_reader_init(&bytes.r, &bytes.out, max);
        bytes.consumed = 0;
        for (size_t i = 0; i < len && !data_reader_done(&bytes.r); i++)
            bytes.consumed += data_reader_feed(&bytes.r, body + i, 1);
        FUZZ_ASSERT(bytes.consumed == whole.consumed);
        FUZZ_ASSERT(bytes.r.flags == whole.r.flags);
        FUZZ_ASSERT(bytes.out.len == whole.out.len);
        FUZZ_ASSERT(bytes.out.len == 0 ||
                    memcmp(bytes.out.data, whole.out.data, bytes.out.len) == 0);
        buf_cleanup(&bytes.out);
    }

    /* The reference reading of the same bytes. */
    struct oracle o;
    oracle_run(&o, body, len);
    FUZZ_ASSERT(whole.consumed == o.consumed);
    FUZZ_ASSERT(data_reader_done(&whole.r) == o.done);
    FUZZ_ASSERT(whole.r.flags == o.flags);
    FUZZ_ASSERT(whole.r.size == o.out.len);
    size_t keep = o.out.len < max ? o.out.len : (size_t)max;
    FUZZ_ASSERT(whole.out.len == keep);
    FUZZ_ASSERT(keep == 0 || memcmp(whole.out.data, o.out.data, keep) == 0);
    buf_cleanup(&o.out);
    buf_cleanup(&split.out);
    buf_cleanup(&whole.out);
    return 0;
}
