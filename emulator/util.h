/*
 * util: checked allocation wrappers, a growable byte buffer and small string
 * helpers shared by every module. Pure: no I/O, no clock. In builds made with
 * -DEMU_ALLOC_FAULTS the allocators can be told to fail after N successful
 * calls, so unit tests can drive every out-of-memory branch (libssh's
 * nallocinc idea).
 */
#ifndef EMU_UTIL_H
#define EMU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EMU_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocators: like their libc namesakes; NULL on failure (never abort). */
void *emu_malloc(size_t n);
void *emu_calloc(size_t nmemb, size_t size);
void *emu_realloc(void *p, size_t n);
char *emu_strdup(const char *s);
char *emu_strndup(const char *s, size_t n);
void emu_free(void *p);

#ifdef EMU_ALLOC_FAULTS
/* Make the allocation after the next `n` successful ones fail; -1 disarms. */
void emu_alloc_fail_after(long n);
#endif

/*
 * A growable byte buffer. `len` bytes are valid; `data` is always
 * NUL-terminated when non-NULL so text can be handed to C string functions.
 * Zero-initialised is a valid empty buffer.
 */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Append; returns 0, or -1 when memory runs out (buffer unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
/* printf-style append; -1 on allocation failure. */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Make room for `n` more bytes; -1 on failure. */
int buf_reserve(struct buf *b, size_t n);
/* Forget the contents; keep the allocation only when it is small. */
void buf_reset(struct buf *b, size_t keep_cap);
/* Release the memory; the buffer is empty and reusable afterwards. */
void buf_cleanup(struct buf *b);
/* Hand over the bytes: returns owned data (caller frees with emu_free). */
char *buf_steal(struct buf *b, size_t *len);

/* Bounded copy that always terminates; returns -1 when `src` was cut. */
int str_copy(char *dst, size_t cap, const char *src);
/* ASCII case-insensitive compare of `n` bytes. */
bool str_ieq_n(const char *a, const char *b, size_t n);
/* ASCII case-insensitive prefix test on a (ptr, len) view. */
bool str_has_prefix_ci(const char *s, size_t len, const char *prefix);
/* True when the bytes are valid UTF-8 (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF). */
bool utf8_valid(const char *s, size_t len);
/* True when every byte is below 0x80. */
bool str_is_ascii(const char *s, size_t len);

/*
 * Escape bytes for a log or JSON string: printable ASCII and valid UTF-8 pass
 * through, `"` and `\` are backslashed, control bytes and invalid bytes become
 * \xNN (\r, \n and \t keep their short forms). At most `max` input bytes are
 * taken; a longer input ends with "...". Returns -1 on allocation failure.
 */
int str_escape(struct buf *out, const char *s, size_t len, size_t max);

/* splitmix64: small, seedable, good enough for IDs and fault dice. */
struct rng {
    uint64_t s;
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform double in [0, 1). */
double rng_unit(struct rng *r);

#endif
