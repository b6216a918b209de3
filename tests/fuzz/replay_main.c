/*
 * replay_main: a main() for fuzz targets built without libFuzzer. Each
 * argument is a file, fed whole to LLVMFuzzerTestOneInput, or a directory,
 * whose files (not recursing, dot files skipped) are fed in name order.
 * `make fuzz-replay` links every target with it under ASan/UBSan and runs
 * it over tests/fuzz/corpus/<target>/, so the corpus is a regression suite
 * on any compiler. Each input gets a buffer of exactly its size, so a read
 * one byte past the end is caught.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 4096, n = 0;
    uint8_t *d = malloc(cap);
    while (d) {
        size_t got = fread(d + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            uint8_t *nd = realloc(d, cap * 2);
            if (nd == NULL) {
                free(d);
                d = NULL;
                break;
            }
            d = nd;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (d == NULL || bad) {
        free(d);
        return -1;
    }
    /* Exactly `n` bytes (malloc(0) may return NULL: use 1 then). */
    uint8_t *exact = malloc(n ? n : 1);
    if (exact == NULL) {
        free(d);
        return -1;
    }
    memcpy(exact, d, n);
    free(d);
    *out = exact;
    *len = n;
    return 0;
}

static int
run_file(const char *path, unsigned long *count)
{
    uint8_t *d;
    size_t n;
    if (read_file(path, &d, &n) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    LLVMFuzzerTestOneInput(d, n);
    free(d);
    (*count)++;
    return 0;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
run_dir(const char *dir, unsigned long *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (nn == NULL) {
                rc = -1;
                break;
            }
            names = nn;
        }
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL) {
            rc = -1;
            break;
        }
        snprintf(names[n], len, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode) &&
            run_file(names[i], count) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int
main(int argc, char **argv)
{
    unsigned long count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if ((S_ISDIR(st.st_mode) ? run_dir(argv[i], &count)
                                 : run_file(argv[i], &count)) < 0)
            return 1;
    }
    printf("replay: %s: %lu inputs ok\n", argv[0], count);
    return 0;
}
