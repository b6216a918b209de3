/*
 * fuzz.h: what every fuzz target shares: the libFuzzer entry point's
 * prototype (our warning flags want one) and FUZZ_ASSERT, which stops the
 * run on a broken invariant so libFuzzer (or replay_main) reports it as a
 * crash. The targets are test code: abort() here is on purpose and never
 * reaches the server.
 */
#ifndef EMU_FUZZ_H
#define EMU_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* True when [p, p+n) lies inside [base, base+len). */
static inline int
fuzz_inside(const void *p, size_t n, const void *base, size_t len)
{
    const char *a = p, *b = base;
    return a >= b && a <= b + len && n <= (size_t)(b + len - a);
}

#endif
