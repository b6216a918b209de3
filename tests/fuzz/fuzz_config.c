/*
 * fuzz_config: a command line for config_parse. The input is split into
 * arguments at newlines (a NUL ends an argument early, as it would in a
 * real argv) after a fixed argv[0]. The config is always released with
 * config_cleanup, whatever the result, so LeakSanitizer checks every error
 * path for leaks. Each argument also goes through the exported helpers
 * (HOST:PORT[=SCENARIO], sizes). Invariants: an error comes with one
 * printable line; a success has a listener, a scenario and an XCLIENT list.
 */
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "util.h"

#define MAX_ARGS 64

static void
parse(int argc, char **argv, size_t errlen)
{
    struct config c;
    char err[1024];
    memset(err, 'Z', sizeof(err));
    enum config_result r = config_parse(argc, argv, &c, err, errlen);
    if (r == CONFIG_ERROR) {
        FUZZ_ASSERT(errlen == 0 || memchr(err, '\0', errlen) != NULL);
        if (errlen > 1)
            FUZZ_ASSERT(err[0] != '\0');
        for (size_t i = 0; i < errlen && err[i]; i++)
            FUZZ_ASSERT((unsigned char)err[i] >= 0x20 && err[i] != 0x7f);
    } else {
        FUZZ_ASSERT(r == CONFIG_OK);
        FUZZ_ASSERT(c.n_listeners >= 1 && c.listeners != NULL);
        FUZZ_ASSERT(c.scenario != NULL);
        FUZZ_ASSERT(c.xclient_from.n >= 1);
        for (size_t i = 0; i < c.n_listeners; i++)
            (void)listener_kind_name(c.listeners[i].kind);
        (void)log_level_name(c.log_level);
        (void)log_format_name(c.log_format);
    }
    config_cleanup(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    FUZZ_ASSERT(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';

    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = "smtp-emulator";
    char *p = copy;
    while (argc < MAX_ARGS && p < copy + size) {
        char *nl = memchr(p, '\n', (size_t)(copy + size - p));
        if (nl)
            *nl = '\0';
        argv[argc++] = p;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    argv[argc] = NULL;

    parse(argc, argv, 1024);
    parse(argc, argv, 12); /* error text cut short */

    for (int i = 1; i < argc; i++) {
        char host[IP_STR_MAX];
        uint16_t port;
        char *scenario = NULL;
        if (config_parse_hostport(argv[i], host, sizeof(host), &port,
                                  &scenario) == 0)
            FUZZ_ASSERT(memchr(host, '\0', sizeof(host)) != NULL);
        emu_free(scenario);
        (void)config_parse_hostport(argv[i], host, sizeof(host), &port, NULL);
        uint64_t sz;
        (void)config_parse_size(argv[i], &sz);
    }
    free(copy);
    return 0;
}
