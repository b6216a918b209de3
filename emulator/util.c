/*
 * util: checked allocation, the growable buffer every module uses for lines,
 * messages and output, and small string helpers (UTF-8 checking, escaping for
 * logs). Pure; callers own what they allocate. The allocation-fault switch
 * exists only in builds compiled with -DEMU_ALLOC_FAULTS (unit tests).
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef EMU_ALLOC_FAULTS
/* Test-only counter; absent from the product build. */
static long alloc_budget = -1;

void
emu_alloc_fail_after(long n)
{
    alloc_budget = n;
}

static bool
alloc_should_fail(void)
{
    if (alloc_budget < 0)
        return false;
    if (alloc_budget == 0)
        return true;
    alloc_budget--;
    return false;
}
#else
static bool
alloc_should_fail(void)
{
    return false;
}
#endif

void *
emu_malloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *
emu_calloc(size_t nmemb, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *
emu_realloc(void *p, size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *
emu_strndup(const char *s, size_t n)
{
    char *d = emu_malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
emu_strdup(const char *s)
{
    return emu_strndup(s, strlen(s));
}

void
emu_free(void *p)
{
    free(p);
}

int
buf_reserve(struct buf *b, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len - 1)
        return -1;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *d = emu_realloc(b->data, cap);
    if (d == NULL)
        return -1;
    d[b->len] = '\0'; /* a fresh block must read as "" too */
    b->data = d;
    b->cap = cap;
    return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int
buf_append_char(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return buf_append(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void
buf_reset(struct buf *b, size_t keep_cap)
{
    if (b->cap > keep_cap) {
        buf_cleanup(b);
        return;
    }
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void
buf_cleanup(struct buf *b)
{
    emu_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *
buf_steal(struct buf *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}

int
str_copy(char *dst, size_t cap, const char *src)
{
    if (cap == 0)
        return -1;
    size_t n = strlen(src);
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

static int
lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

bool
str_ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

bool
str_has_prefix_ci(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && str_ieq_n(s, prefix, n);
}

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool
utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

bool
str_is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

int
str_escape(struct buf *out, const char *s, size_t len, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t end = len > max ? max : len;
    size_t i = 0;
    char tmp[8];

    while (i < end) {
        /* A run of printable ASCII that needs no backslash goes in whole. */
        size_t run = i;
        while (run < end && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' &&
               p[run] != '\\')
            run++;
        if (run > i) {
            if (buf_append(out, p + i, run - i) < 0)
                return -1;
            i = run;
            continue;
        }
        unsigned c = p[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, end - i);
            if (n > 0) {
                if (buf_append(out, p + i, n) < 0)
                    return -1;
                i += n;
                continue;
            }
        }
        const char *rep = NULL;
        switch (c) {
        case '"':
            rep = "\\\"";
            break;
        case '\\':
            rep = "\\\\";
            break;
        case '\r':
            rep = "\\r";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\t':
            rep = "\\t";
            break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                snprintf(tmp, sizeof(tmp), "\\x%02X", c);
                rep = tmp;
            }
        }
        if (rep ? buf_append_str(out, rep) : buf_append_char(out, (char)c))
            return -1;
        i++;
    }
    if (len > max && buf_append_str(out, "...") < 0)
        return -1;
    if (out->data == NULL && buf_reserve(out, 0) < 0)
        return -1;
    return 0;
}

void
rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t
rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double
rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
