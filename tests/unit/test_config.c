/*
 * test_config: command-line parsing: defaults, every option in both the
 * "--opt value" and "--opt=value" forms, listener addresses (IPv6, the
 * =SCENARIO suffix), --set, the TLS pairing rule, error texts that name
 * the offending option, sizes and numbers, and allocation failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "util.h"

#define MAX_ARGS 80

static enum config_result
parse_args(struct config *c, char *err, size_t errlen, const char *const *args)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    argv[argc++] = (char *)"smtp-emulator";
    for (; *args; args++) {
        assert_true(argc < MAX_ARGS - 1);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    return config_parse(argc, argv, c, err, errlen);
}

#define PARSE(c, err, ...)                                                     \
    parse_args((c), (err), sizeof(err),                                        \
               (const char *const[]){__VA_ARGS__, NULL})

/* Parse, expect CONFIG_ERROR with `needle` in the message. */
static void
expect_error(const char *const *args, const char *needle)
{
    struct config c;
    char err[256];
    assert_int_equal(parse_args(&c, err, sizeof(err), args), CONFIG_ERROR);
    assert_true(err[0] != '\0');
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_null(strchr(err, '\n'));
    config_cleanup(&c);
}

#define EXPECT_ERROR(needle, ...)                                              \
    expect_error((const char *const[]){__VA_ARGS__, NULL}, (needle))

/* One option with one value, expected to fail naming the option. */
static void
expect_value_error(const char *opt, const char *val)
{
    const char *args[] = {opt, val, NULL};
    expect_error(args, opt);
}

/* ---- defaults --------------------------------------------------------- */

static void
test_config_defaults(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    const char *const none[] = {NULL};
    assert_int_equal(parse_args(&c, err, sizeof(err), none), CONFIG_OK);
    assert_string_equal(err, "");
    assert_int_equal(c.action, CONFIG_RUN);
    assert_null(c.action_arg);
    assert_int_equal(c.n_listeners, 1);
    assert_int_equal(c.listeners[0].kind, LISTENER_SMTP);
    assert_false(c.listeners[0].proxy_protocol);
    assert_string_equal(c.listeners[0].host, "127.0.0.1");
    assert_int_equal(c.listeners[0].port, 2525);
    assert_null(c.listeners[0].scenario);
    assert_null(c.hostname);
    assert_null(c.banner);
    assert_null(c.tls_cert);
    assert_null(c.tls_key);
    assert_null(c.tls_ca);
    assert_false(c.no_tls);
    assert_true(c.max_message_size == 10240000);
    assert_int_equal(c.max_recipients, 1000);
    assert_int_equal(c.max_connections, 20000);
    assert_int_equal(c.idle_timeout, 300);
    assert_float_equal(c.shutdown_grace, 1.0, 1e-9);
    assert_int_equal(c.hard_error_limit, 20);
    assert_int_equal(c.soft_error_limit, 10);
    assert_float_equal(c.error_delay, 0.0, 1e-9);
    assert_int_equal(c.max_line, 2048);
    assert_int_equal(c.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(c.log_level, LOG_LEVEL_INFO);
    assert_null(c.log_file);
    assert_null(c.spool_dir);
    assert_int_equal(c.max_messages, 10000);
    assert_true(c.max_store_bytes == 256ULL * 1024 * 1024);
    assert_int_equal(c.max_sessions, 1000);
    assert_string_equal(c.scenario, "accept");
    assert_int_equal(c.n_params, 0);
    assert_false(c.seed_set);
    assert_float_equal(c.clock_offset, 0.0, 1e-9);
    assert_true(c.lua_mem_limit == 64ULL * 1024 * 1024);
    assert_true(c.lua_instr_limit == 10000000);
    assert_false(c.api_enabled);
    assert_null(c.api_token);
    assert_int_equal(c.workers, 1);
    assert_null(c.user);

    /* xclient-from defaults to loopback, both families. */
    assert_int_equal(c.xclient_from.n, 2);
    struct ip_addr a;
    assert_int_equal(ip_parse("127.0.0.1", 9, &a), 0);
    assert_true(cidr_list_match(&c.xclient_from, &a));
    assert_int_equal(ip_parse("127.9.9.9", 9, &a), 0);
    assert_true(cidr_list_match(&c.xclient_from, &a));
    assert_int_equal(ip_parse("::1", 3, &a), 0);
    assert_true(cidr_list_match(&c.xclient_from, &a));
    assert_int_equal(ip_parse("192.0.2.1", 9, &a), 0);
    assert_false(cidr_list_match(&c.xclient_from, &a));
    config_cleanup(&c);
}

static void
test_config_cleanup_is_idempotent(void **state)
{
    (void)state;
    struct config c;
    char err[64];
    assert_int_equal(PARSE(&c, err, "--scenario", "x"), CONFIG_OK);
    config_cleanup(&c);
    assert_null(c.listeners);
    assert_null(c.scenario);
    config_cleanup(&c); /* zeroed: safe again */
}

/* ---- every option ----------------------------------------------------- */

static void
check_full(const struct config *c)
{
    assert_int_equal(c->action, CONFIG_RUN);
    assert_int_equal(c->n_listeners, 3);
    assert_int_equal(c->listeners[0].kind, LISTENER_SMTP);
    assert_false(c->listeners[0].proxy_protocol);
    assert_string_equal(c->listeners[0].host, "0.0.0.0");
    assert_int_equal(c->listeners[0].port, 25);
    assert_null(c->listeners[0].scenario);
    assert_int_equal(c->listeners[1].kind, LISTENER_SMTPS);
    assert_string_equal(c->listeners[1].host, "::1");
    assert_int_equal(c->listeners[1].port, 465);
    assert_string_equal(c->listeners[1].scenario, "greylist");
    assert_int_equal(c->listeners[2].kind, LISTENER_SMTP);
    assert_true(c->listeners[2].proxy_protocol);
    assert_string_equal(c->listeners[2].host, "127.0.0.1");
    assert_int_equal(c->listeners[2].port, 2526);
    assert_string_equal(c->hostname, "mx.example.com");
    assert_string_equal(c->banner, "mx.example.com ESMTP Postfix");
    assert_string_equal(c->tls_cert, "/etc/cert.pem");
    assert_string_equal(c->tls_key, "/etc/key.pem");
    assert_string_equal(c->tls_ca, "/etc/ca.pem");
    assert_true(c->no_tls);
    assert_true(c->max_message_size == 10ULL * 1024 * 1024);
    assert_int_equal(c->max_recipients, 50);
    assert_int_equal(c->max_connections, 100);
    assert_int_equal(c->idle_timeout, 60);
    assert_int_equal(c->hard_error_limit, 5);
    assert_float_equal(c->error_delay, 0.5, 1e-9);
    assert_float_equal(c->shutdown_grace, 2.5, 1e-9);
    assert_int_equal(c->log_format, LOG_FORMAT_JSON);
    assert_int_equal(c->log_level, LOG_LEVEL_TRACE);
    assert_string_equal(c->log_file, "/tmp/emu.log");
    assert_string_equal(c->spool_dir, "/var/spool/emu");
    assert_int_equal(c->max_messages, 7);
    assert_true(c->max_store_bytes == 64 * 1024);
    assert_int_equal(c->max_sessions, 9);
    assert_int_equal(c->xclient_from.n, 2);
    assert_int_equal(c->xclient_from.v[0].prefix, 24);
    assert_string_equal(c->scenario, "scenarios/custom.lua");
    assert_int_equal(c->n_params, 2);
    assert_null(c->params[0].scenario);
    assert_string_equal(c->params[0].key, "code");
    assert_string_equal(c->params[0].value, "451");
    assert_string_equal(c->params[1].scenario, "greylist");
    assert_string_equal(c->params[1].key, "delay");
    assert_string_equal(c->params[1].value, "30");
    assert_true(c->seed_set);
    assert_true(c->seed == 42);
    assert_float_equal(c->clock_offset, 3600, 1e-9);
    assert_true(c->lua_mem_limit == 2ULL * 1024 * 1024);
    assert_true(c->lua_instr_limit == 5000);
    assert_true(c->api_enabled);
    assert_string_equal(c->api_host, "127.0.0.1");
    assert_int_equal(c->api_port, 8025);
    assert_string_equal(c->api_token, "s3cret");
    assert_int_equal(c->workers, 4);
    assert_string_equal(c->user, "nobody");
}

static void
test_config_every_option_parsed(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    enum config_result r = PARSE(
        &c, err, "--listen", "*:25", "--listen-tls", "[::1]:465=greylist",
        "--proxy-protocol", "localhost:2526", "--hostname", "mx.example.com",
        "--banner", "mx.example.com ESMTP Postfix", "--tls-cert",
        "/etc/cert.pem", "--tls-key", "/etc/key.pem", "--tls-ca", "/etc/ca.pem",
        "--no-tls", "--max-message-size", "10M", "--max-recipients", "50",
        "--max-connections", "100", "--idle-timeout", "60", "--max-errors", "5",
        "--error-delay", "0.5", "--shutdown-grace", "2.5", "--log-format",
        "json", "--log-level", "trace", "--log-file", "/tmp/emu.log", "--spool",
        "/var/spool/emu", "--max-messages", "7", "--max-store-bytes", "64k",
        "--max-sessions", "9", "--xclient-from", "192.0.2.0/24, ::1",
        "--scenario", "scenarios/custom.lua", "--set", "code=451", "--set",
        "greylist.delay=30", "--seed", "42", "--clock-offset", "3600",
        "--lua-memory", "2M", "--lua-instructions", "5000", "--api",
        "127.0.0.1:8025", "--api-token", "s3cret", "--workers", "4", "--user",
        "nobody");
    if (r != CONFIG_OK)
        fail_msg("%s", err);
    check_full(&c);
    config_cleanup(&c);
}

static void
test_config_equals_form(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    enum config_result r = PARSE(
        &c, err, "--listen=*:25", "--listen-tls=[::1]:465=greylist",
        "--proxy-protocol=localhost:2526", "--hostname=mx.example.com",
        "--banner=mx.example.com ESMTP Postfix", "--tls-cert=/etc/cert.pem",
        "--tls-key=/etc/key.pem", "--tls-ca=/etc/ca.pem", "--no-tls",
        "--max-message-size=10M", "--max-recipients=50",
        "--max-connections=100", "--idle-timeout=60", "--max-errors=5",
        "--error-delay=0.5", "--shutdown-grace=2.5", "--log-format=json",
        "--log-level=trace", "--log-file=/tmp/emu.log",
        "--spool=/var/spool/emu", "--max-messages=7", "--max-store-bytes=64k",
        "--max-sessions=9", "--xclient-from=192.0.2.0/24, ::1",
        "--scenario=scenarios/custom.lua", "--set=code=451",
        "--set=greylist.delay=30", "--seed=42", "--clock-offset=3600",
        "--lua-memory=2M", "--lua-instructions=5000", "--api=127.0.0.1:8025",
        "--api-token=s3cret", "--workers=4", "--user=nobody");
    if (r != CONFIG_OK)
        fail_msg("%s", err);
    check_full(&c);
    config_cleanup(&c);
}

static void
test_config_equals_form_keeps_rest_of_value(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--banner=a=b", "--set", "k=v=w",
                           "--api-token", "x=y", "--hostname="),
                     CONFIG_ERROR); /* empty host name */
    config_cleanup(&c);
    assert_int_equal(
        PARSE(&c, err, "--banner=a=b", "--set", "k=v=w", "--api-token", "x=y"),
        CONFIG_OK);
    assert_string_equal(c.banner, "a=b");
    assert_string_equal(c.params[0].key, "k");
    assert_string_equal(c.params[0].value, "v=w");
    assert_string_equal(c.api_token, "x=y");
    config_cleanup(&c);
}

static void
test_config_later_values_replace_earlier(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--scenario", "a", "--scenario", "b",
                           "--hostname", "h1", "--hostname", "h2",
                           "--xclient-from", "10.0.0.0/8", "--xclient-from",
                           "192.0.2.0/24", "--log-level", "debug",
                           "--log-level", "warn", "--api", "127.0.0.1:1",
                           "--api", "[::1]:2"),
                     CONFIG_OK);
    assert_string_equal(c.scenario, "b");
    assert_string_equal(c.hostname, "h2");
    assert_int_equal(c.xclient_from.n, 1);
    assert_int_equal(c.xclient_from.v[0].prefix, 24);
    assert_int_equal(c.log_level, LOG_LEVEL_WARN);
    assert_string_equal(c.api_host, "::1");
    assert_int_equal(c.api_port, 2);
    config_cleanup(&c);
}

/* ---- actions ---------------------------------------------------------- */

static void
test_config_actions(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--help"), CONFIG_OK);
    assert_int_equal(c.action, CONFIG_HELP);
    config_cleanup(&c);
    assert_int_equal(PARSE(&c, err, "-h"), CONFIG_OK);
    assert_int_equal(c.action, CONFIG_HELP);
    config_cleanup(&c);
    assert_int_equal(PARSE(&c, err, "--version"), CONFIG_OK);
    assert_int_equal(c.action, CONFIG_VERSION);
    config_cleanup(&c);
    assert_int_equal(PARSE(&c, err, "--list-scenarios"), CONFIG_OK);
    assert_int_equal(c.action, CONFIG_LIST_SCENARIOS);
    assert_null(c.action_arg);
    config_cleanup(&c);
    assert_int_equal(PARSE(&c, err, "--describe", "greylist"), CONFIG_OK);
    assert_int_equal(c.action, CONFIG_DESCRIBE);
    assert_string_equal(c.action_arg, "greylist");
    config_cleanup(&c);
    assert_int_equal(PARSE(&c, err, "--check-scenario=x.lua"), CONFIG_OK);
    assert_int_equal(c.action, CONFIG_CHECK_SCENARIO);
    assert_string_equal(c.action_arg, "x.lua");
    config_cleanup(&c);
    assert_int_equal(
        PARSE(&c, err, "--healthcheck", "http://127.0.0.1:8025/api/v1/health"),
        CONFIG_OK);
    assert_int_equal(c.action, CONFIG_HEALTHCHECK);
    assert_string_equal(c.action_arg, "http://127.0.0.1:8025/api/v1/health");
    config_cleanup(&c);
    /* The last action wins, and its argument does not leak. */
    assert_int_equal(
        PARSE(&c, err, "--describe", "a", "--check-scenario", "b", "--version"),
        CONFIG_OK);
    assert_int_equal(c.action, CONFIG_VERSION);
    config_cleanup(&c);
}

/* ---- errors ----------------------------------------------------------- */

static void
test_config_unknown_option_names_it(void **state)
{
    (void)state;
    EXPECT_ERROR("'--bogus'", "--bogus");
    EXPECT_ERROR("'--bogus'", "--bogus=1");
    EXPECT_ERROR("'--listenx'", "--listenx", "1.2.3.4:25");
    EXPECT_ERROR("'--liste'", "--liste", "1.2.3.4:25");
    EXPECT_ERROR("'--LISTEN'", "--LISTEN", "1.2.3.4:25");
    EXPECT_ERROR("'--'", "--");
    /* Options after a valid one are still checked. */
    EXPECT_ERROR("'--nope'", "--workers", "2", "--nope");

    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--bogus=secret"), CONFIG_ERROR);
    assert_null(strstr(err, "secret"));
    config_cleanup(&c);
}

static void
test_config_rejects_positional_arguments(void **state)
{
    (void)state;
    EXPECT_ERROR("'extra'", "extra");
    EXPECT_ERROR("'-x'", "-x");
    EXPECT_ERROR("'-help'", "-help");
    EXPECT_ERROR("'127.0.0.1:25'", "--workers", "2", "127.0.0.1:25");
    /* The error stays one line whatever the argument holds. */
    EXPECT_ERROR("'a?b'", "a\nb");
    EXPECT_ERROR("'--x?y'", "--x\ry");
}

static void
test_config_value_required_or_forbidden(void **state)
{
    (void)state;
    EXPECT_ERROR("--listen", "--listen");
    EXPECT_ERROR("--set", "--workers", "2", "--set");
    EXPECT_ERROR("--help", "--help=yes");
    EXPECT_ERROR("--no-tls", "--no-tls=1");
    EXPECT_ERROR("--list-scenarios", "--list-scenarios=");
}

static void
test_config_bad_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *opt, *val;
    } bad[] = {
        {"--max-message-size", "0"},
        {"--max-message-size", "abc"},
        {"--max-message-size", "-1"},
        {"--max-message-size", "10X"},
        {"--max-message-size", ""},
        {"--max-message-size", "1.5M"},
        {"--max-message-size", "10MiB"},
        {"--max-message-size", "99999999999999999999"},
        {"--max-message-size", "17179869184G"},
        {"--max-recipients", "0"},
        {"--max-recipients", "1000001"},
        {"--max-recipients", "abc"},
        {"--max-recipients", "-5"},
        {"--max-recipients", " 5"},
        {"--max-recipients", "5x"},
        {"--max-recipients", "5 "},
        {"--max-recipients", ""},
        {"--max-recipients", "99999999999999999999"},
        {"--max-recipients", "1e3"},
        {"--max-connections", "0"},
        {"--max-connections", "1000001"},
        {"--idle-timeout", "0"},
        {"--idle-timeout", "86401"},
        {"--max-errors", "0"},
        {"--max-errors", "x"},
        {"--error-delay", "-1"},
        {"--error-delay", "abc"},
        {"--error-delay", ""},
        {"--error-delay", "nan"},
        {"--error-delay", "inf"},
        {"--error-delay", "1e10"},
        {"--error-delay", "5s"},
        {"--shutdown-grace", "-0.5"},
        {"--shutdown-grace", "x"},
        {"--clock-offset", "-1"},
        {"--clock-offset", "1h"},
        {"--max-messages", "100000001"},
        {"--max-messages", "x"},
        {"--max-store-bytes", "x"},
        {"--max-store-bytes", "1T"},
        {"--max-store-bytes", ""},
        {"--max-sessions", "10000001"},
        {"--seed", "-1"},
        {"--seed", "x"},
        {"--seed", ""},
        {"--seed", "12x"},
        {"--seed", "18446744073709551616"},
        {"--lua-memory", "1000"},
        {"--lua-memory", "1023k"},
        {"--lua-memory", "x"},
        {"--lua-instructions", "999"},
        {"--lua-instructions", "x"},
        {"--workers", "0"},
        {"--workers", "257"},
        {"--log-format", "xml"},
        {"--log-format", "JSON"},
        {"--log-format", ""},
        {"--log-level", "verbose"},
        {"--log-level", "INFO"},
        {"--log-level", ""},
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++)
        expect_value_error(bad[i].opt, bad[i].val);
}

static void
test_config_number_bounds_accepted(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(
        PARSE(&c, err, "--max-recipients", "1000000", "--max-connections", "1",
              "--idle-timeout", "86400", "--workers", "256", "--max-messages",
              "0", "--max-sessions", "0", "--error-delay", "0",
              "--shutdown-grace", "1e9", "--seed", "18446744073709551615",
              "--lua-memory", "1M", "--lua-instructions", "1k",
              "--max-message-size", "1", "--max-store-bytes", "0"),
        CONFIG_OK);
    assert_int_equal(c.max_recipients, 1000000);
    assert_int_equal(c.max_connections, 1);
    assert_int_equal(c.idle_timeout, 86400);
    assert_int_equal(c.workers, 256);
    assert_int_equal(c.max_messages, 0);
    assert_float_equal(c.shutdown_grace, 1e9, 1);
    assert_true(c.seed == UINT64_MAX);
    assert_true(c.seed_set);
    assert_true(c.lua_mem_limit == 1024 * 1024);
    assert_true(c.lua_instr_limit == 1024);
    assert_true(c.max_message_size == 1);
    assert_true(c.max_store_bytes == 0);
    config_cleanup(&c);
}

static void
test_config_log_levels_and_formats(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum log_level level;
    } lv[] = {
        {"error", LOG_LEVEL_ERROR}, {"warn", LOG_LEVEL_WARN},
        {"info", LOG_LEVEL_INFO},   {"debug", LOG_LEVEL_DEBUG},
        {"trace", LOG_LEVEL_TRACE},
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(lv); i++) {
        struct config c;
        char err[256];
        assert_int_equal(PARSE(&c, err, "--log-level", lv[i].name), CONFIG_OK);
        assert_int_equal(c.log_level, lv[i].level);
        assert_string_equal(log_level_name(lv[i].level), lv[i].name);
        config_cleanup(&c);
    }
    struct config c;
    char err[256];
    assert_int_equal(
        PARSE(&c, err, "--log-format", "json", "--log-format", "text"),
        CONFIG_OK);
    assert_int_equal(c.log_format, LOG_FORMAT_TEXT);
    config_cleanup(&c);
    assert_string_equal(log_format_name(LOG_FORMAT_TEXT), "text");
    assert_string_equal(log_format_name(LOG_FORMAT_JSON), "json");
    assert_string_equal(log_format_name((enum log_format)7), "?");
    assert_string_equal(log_level_name((enum log_level)77), "?");
    assert_string_equal(listener_kind_name(LISTENER_SMTP), "smtp");
    assert_string_equal(listener_kind_name(LISTENER_SMTPS), "smtps");
    assert_string_equal(listener_kind_name((enum listener_kind)5), "?");
}

static void
test_config_parse_size(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(config_parse_size("10240000", &v), 0);
    assert_true(v == 10240000);
    assert_int_equal(config_parse_size("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(config_parse_size("64k", &v), 0);
    assert_true(v == 65536);
    assert_int_equal(config_parse_size("64K", &v), 0);
    assert_true(v == 65536);
    assert_int_equal(config_parse_size("10M", &v), 0);
    assert_true(v == 10485760);
    assert_int_equal(config_parse_size("10m", &v), 0);
    assert_int_equal(config_parse_size("2G", &v), 0);
    assert_true(v == 2ULL * 1024 * 1024 * 1024);
    assert_int_equal(config_parse_size("1kB", &v), 0);
    assert_true(v == 1024);
    assert_int_equal(config_parse_size("1Mb", &v), 0);
    assert_true(v == 1024 * 1024);
    assert_int_equal(config_parse_size("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(config_parse_size("17179869183G", &v), 0);

    v = 99;
    static const char *bad[] = {
        "",
        "k",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1.5",
        "1x",
        "1kk",
        "1kBB",
        "1B",
        "1T",
        "0x10",
        "1e3",
        "1 k",
        "1kB ",
        "18446744073709551616",
        "17179869184G",
        "18014398509481984k",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++)
        assert_int_equal(config_parse_size(bad[i], &v), -1);
    assert_true(v == 99); /* untouched on error */
}

/* ---- listeners -------------------------------------------------------- */

static void
test_config_bad_listen_addresses(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:99999",
        "127.0.0.1:123456",
        "127.0.0.1:abc",
        "127.0.0.1:-1",
        "127.0.0.1:2 5",
        "::1:25",
        "::1",
        "[::1]",
        "[::1]25",
        "[::1:25",
        "::1]:25",
        "[::1]:",
        "[fe80::1%eth0]:25",
        "host.example:25",
        "999.1.1.1:25",
        "127.0.0.1:25=",
        "[::1]:25=",
        "localhost6:25",
        "127.0.0.1 :25",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(bad); i++) {
        expect_value_error("--listen", bad[i]);
        expect_value_error("--listen-tls", bad[i]);
        expect_value_error("--proxy-protocol", bad[i]);
    }
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--listen", "127.0.0.1"), CONFIG_ERROR);
    assert_non_null(strstr(err, "'127.0.0.1'"));
    config_cleanup(&c);
}

static void
test_config_ipv6_listen(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--listen", "[::1]:25", "--listen",
                           "[2001:db8::1]:2525", "--listen-tls", "[::]:0"),
                     CONFIG_OK);
    assert_int_equal(c.n_listeners, 3);
    assert_string_equal(c.listeners[0].host, "::1");
    assert_int_equal(c.listeners[0].port, 25);
    assert_string_equal(c.listeners[1].host, "2001:db8::1");
    assert_int_equal(c.listeners[1].port, 2525);
    assert_string_equal(c.listeners[2].host, "::");
    assert_int_equal(c.listeners[2].port, 0);
    assert_int_equal(c.listeners[2].kind, LISTENER_SMTPS);
    config_cleanup(&c);
}

static void
test_config_listen_host_shorthands(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--listen", "localhost:25", "--listen",
                           "*:0", "--listen", ":2525", "--listen",
                           "0.0.0.0:65535"),
                     CONFIG_OK);
    assert_int_equal(c.n_listeners, 4);
    assert_string_equal(c.listeners[0].host, "127.0.0.1");
    assert_string_equal(c.listeners[1].host, "0.0.0.0");
    assert_int_equal(c.listeners[1].port, 0);
    assert_string_equal(c.listeners[2].host, "0.0.0.0");
    assert_int_equal(c.listeners[2].port, 2525);
    assert_int_equal(c.listeners[3].port, 65535);
    config_cleanup(&c);
}

static void
test_config_listener_scenario_suffix(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--listen", "127.0.0.1:2525=greylist",
                           "--listen", "127.0.0.1:2526", "--proxy-protocol",
                           "[::1]:2527=dir/x.lua",
                           "--listen-tls=127.0.0.1:4650=a=b"),
                     CONFIG_OK);
    assert_int_equal(c.n_listeners, 4);
    assert_string_equal(c.listeners[0].scenario, "greylist");
    assert_int_equal(c.listeners[0].port, 2525);
    assert_null(c.listeners[1].scenario);
    assert_true(c.listeners[2].proxy_protocol);
    assert_string_equal(c.listeners[2].host, "::1");
    assert_string_equal(c.listeners[2].scenario, "dir/x.lua");
    assert_int_equal(c.listeners[3].kind, LISTENER_SMTPS);
    assert_string_equal(c.listeners[3].scenario, "a=b");
    /* The default scenario is separate from listener ones. */
    assert_string_equal(c.scenario, "accept");
    config_cleanup(&c);
}

static void
test_config_parse_redis_url(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int rc;
        const char *host;
        uint16_t port;
        unsigned db;
    } cases[] = {
        {"redis://127.0.0.1:6380/2", 0, "127.0.0.1", 6380, 2},
        {"redis://127.0.0.1", 0, "127.0.0.1", 6379, 0},
        {"redis://redis", 0, "redis", 6379, 0},
        {"redis://redis:6379/", 0, "redis", 6379, 0},
        {"redis://my_redis-1.svc.cluster.local:7000/15", 0,
         "my_redis-1.svc.cluster.local", 7000, 15},
        {"redis://[::1]:6379/1", 0, "::1", 6379, 1},
        {"redis://[::1]", 0, "::1", 6379, 0},
        {"redis://::1:6379", -1, NULL, 0, 0},    /* IPv6 needs brackets */
        {"redis://[nope]:6379", -1, NULL, 0, 0}, /* not an address */
        {"redis://a..b", -1, NULL, 0, 0},
        {"redis://-a", -1, NULL, 0, 0},
        {"redis://a-", -1, NULL, 0, 0},
        {"redis://a b", -1, NULL, 0, 0},
        {"redis://h:0", -1, NULL, 0, 0},
        {"redis://h:65536", -1, NULL, 0, 0},
        {"redis://h:", -1, NULL, 0, 0},
        {"redis://h:12x", -1, NULL, 0, 0},
        {"redis://h/1001", -1, NULL, 0, 0},
        {"redis://h/x", -1, NULL, 0, 0},
        {"redis://", -1, NULL, 0, 0},
        {"http://h", -1, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[REDIS_HOST_MAX];
        uint16_t port = 0;
        unsigned db = 99;
        int rc = config_parse_redis_url(cases[i].url, host, sizeof(host), &port,
                                        &db);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
            assert_int_equal(db, cases[i].db);
        }
    }
    /* A label of 64 characters is too long; 63 is fine. */
    char url[128], host[REDIS_HOST_MAX];
    uint16_t port;
    unsigned db;
    snprintf(url, sizeof(url), "redis://%063d", 0);
    assert_int_equal(
        config_parse_redis_url(url, host, sizeof(host), &port, &db), 0);
    snprintf(url, sizeof(url), "redis://%064d", 0);
    assert_int_equal(
        config_parse_redis_url(url, host, sizeof(host), &port, &db), -1);
}

static void
test_config_parse_hostport_direct(void **state)
{
    (void)state;
    char host[IP_STR_MAX];
    uint16_t port = 0;
    char *scen = (char *)"unset";
    assert_int_equal(config_parse_hostport("192.0.2.1:587", host, sizeof(host),
                                           &port, &scen),
                     0);
    assert_string_equal(host, "192.0.2.1");
    assert_int_equal(port, 587);
    assert_null(scen);
    assert_int_equal(
        config_parse_hostport("[::1]:25=x", host, sizeof(host), &port, &scen),
        0);
    assert_string_equal(scen, "x");
    emu_free(scen);
    /* Without a scenario pointer, '=' is just a bad port. */
    assert_int_equal(config_parse_hostport("127.0.0.1:25=x", host, sizeof(host),
                                           &port, NULL),
                     -1);
    assert_int_equal(
        config_parse_hostport("127.0.0.1:25", host, sizeof(host), &port, NULL),
        0);
    /* Too small for the literal. */
    char small[4];
    assert_int_equal(
        config_parse_hostport("10.0.0.1:25", small, sizeof(small), &port, NULL),
        -1);
}

static void
test_config_api_address(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--api", "[::1]:0"), CONFIG_OK);
    assert_true(c.api_enabled);
    assert_string_equal(c.api_host, "::1");
    assert_int_equal(c.api_port, 0);
    config_cleanup(&c);
    expect_value_error("--api", "127.0.0.1:8025=scenario");
    expect_value_error("--api", "127.0.0.1");
    expect_value_error("--api", "[::1]");
    expect_value_error("--api-token", "");
}

/* ---- --set ------------------------------------------------------------ */

static void
test_config_set_with_scenario_prefix(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(PARSE(&c, err, "--set", "code=550", "--set",
                           "greylist.delay=300", "--set", "a.b.c=d", "--set",
                           "empty=", "--set", "list=a,b,c"),
                     CONFIG_OK);
    assert_int_equal(c.n_params, 5);
    assert_null(c.params[0].scenario);
    assert_string_equal(c.params[0].key, "code");
    assert_string_equal(c.params[0].value, "550");
    assert_string_equal(c.params[1].scenario, "greylist");
    assert_string_equal(c.params[1].key, "delay");
    assert_string_equal(c.params[1].value, "300");
    /* Only the first dot splits off the scenario. */
    assert_string_equal(c.params[2].scenario, "a");
    assert_string_equal(c.params[2].key, "b.c");
    assert_string_equal(c.params[3].key, "empty");
    assert_string_equal(c.params[3].value, "");
    assert_string_equal(c.params[4].value, "a,b,c");
    config_cleanup(&c);

    /* A dot in the value is not a scenario prefix. */
    assert_int_equal(PARSE(&c, err, "--set", "host=mx.example"), CONFIG_OK);
    assert_null(c.params[0].scenario);
    assert_string_equal(c.params[0].key, "host");
    assert_string_equal(c.params[0].value, "mx.example");
    config_cleanup(&c);
}

static void
test_config_set_rejects_malformed(void **state)
{
    (void)state;
    expect_value_error("--set", "novalue");
    expect_value_error("--set", "=v");
    expect_value_error("--set", "");
    expect_value_error("--set", ".k=v");
    expect_value_error("--set", "s.=v");
    expect_value_error("--set", ".=v");
    /* An error after good --set values still frees them. */
    EXPECT_ERROR("--set", "--set", "a=1", "--set", "s.b=2", "--set", "bad");
}

/* ---- TLS and other checks ------------------------------------------- */

static void
test_config_tls_cert_requires_key(void **state)
{
    (void)state;
    EXPECT_ERROR("--tls-key", "--tls-cert", "cert.pem");
    EXPECT_ERROR("--tls-cert", "--tls-key", "key.pem");
    EXPECT_ERROR("--tls-key", "--tls-cert", "cert.pem", "--tls-ca", "ca.pem");
    struct config c;
    char err[256];
    assert_int_equal(
        PARSE(&c, err, "--tls-key", "k.pem", "--tls-cert", "c.pem"), CONFIG_OK);
    assert_string_equal(c.tls_cert, "c.pem");
    assert_string_equal(c.tls_key, "k.pem");
    assert_null(c.tls_ca);
    config_cleanup(&c);
    assert_int_equal(PARSE(&c, err, "--tls-ca", "ca.pem"), CONFIG_OK);
    assert_string_equal(c.tls_ca, "ca.pem");
    config_cleanup(&c);
}

static void
test_config_xclient_from(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    assert_int_equal(
        PARSE(&c, err, "--xclient-from", "10.0.0.0/8,192.0.2.1, 2001:db8::/32"),
        CONFIG_OK);
    assert_int_equal(c.xclient_from.n, 3);
    struct ip_addr a;
    assert_int_equal(ip_parse("127.0.0.1", 9, &a), 0);
    assert_false(cidr_list_match(&c.xclient_from, &a));
    assert_int_equal(ip_parse("10.1.2.3", 8, &a), 0);
    assert_true(cidr_list_match(&c.xclient_from, &a));
    config_cleanup(&c);

    /* The error names the bad item, not the whole list. */
    assert_int_equal(PARSE(&c, err, "--xclient-from", "10.0.0.0/8, nope ,::1"),
                     CONFIG_ERROR);
    assert_non_null(strstr(err, "--xclient-from"));
    assert_non_null(strstr(err, "'nope'"));
    config_cleanup(&c);
    expect_value_error("--xclient-from", "192.0.2.1/24");
    expect_value_error("--xclient-from", "192.0.2.0/33");
}

static void
test_config_rejects_empty_or_multiline_strings(void **state)
{
    (void)state;
    expect_value_error("--hostname", "");
    expect_value_error("--hostname", "mx example");
    expect_value_error("--hostname", "mx\texample");
    expect_value_error("--hostname", "mx\r\n");
    expect_value_error("--banner", "line one\r\n250 injected");
    expect_value_error("--banner", "a\nb");
    expect_value_error("--banner", "a\rb");
    expect_value_error("--spool", "");
    expect_value_error("--scenario", "");
    expect_value_error("--api-token", "");
    expect_value_error("--user", "");

    struct config c;
    char err[256];
    /* A banner may be empty or hold spaces. */
    assert_int_equal(PARSE(&c, err, "--banner", ""), CONFIG_OK);
    assert_string_equal(c.banner, "");
    config_cleanup(&c);
}

static void
test_config_error_buffer_sizes(void **state)
{
    (void)state;
    struct config c;
    char *const argv[] = {(char *)"x", (char *)"--bogus-option", NULL};
    /* No error buffer at all. */
    assert_int_equal(config_parse(2, argv, &c, NULL, 0), CONFIG_ERROR);
    config_cleanup(&c);
    /* A tiny one is truncated, still terminated. */
    char err[8];
    memset(err, 'z', sizeof(err));
    assert_int_equal(config_parse(2, argv, &c, err, sizeof(err)), CONFIG_ERROR);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    config_cleanup(&c);
}

static void
test_config_usage_lists_every_option(void **state)
{
    (void)state;
    static const char *names[] = {
        "--listen",
        "--listen-tls",
        "--proxy-protocol",
        "--hostname",
        "--banner",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
        "--no-tls",
        "--max-message-size",
        "--max-recipients",
        "--max-connections",
        "--idle-timeout",
        "--max-errors",
        "--error-delay",
        "--shutdown-grace",
        "--log-format",
        "--log-level",
        "--log-file",
        "--spool",
        "--max-messages",
        "--max-store-bytes",
        "--max-sessions",
        "--xclient-from",
        "--scenario",
        "--set",
        "--list-scenarios",
        "--describe",
        "--check-scenario",
        "--seed",
        "--clock-offset",
        "--lua-memory",
        "--lua-instructions",
        "--api",
        "--api-token",
        "--workers",
        "--user",
        "--healthcheck",
        "--help",
        "--version",
    };
    for (size_t i = 0; i < EMU_ARRAY_LEN(names); i++) {
        if (strstr(config_usage, names[i]) == NULL)
            fail_msg("usage does not mention %s", names[i]);
        /* ... and the parser knows it (no "unknown option" error). */
        struct config c;
        char err[256];
        const char *args[] = {names[i], "1", NULL};
        parse_args(&c, err, sizeof(err), args);
        assert_null(strstr(err, "unknown option"));
        config_cleanup(&c);
    }
}

/* ---- allocation failures ---------------------------------------------- */

static void
alloc_loop(const char *const *args)
{
    bool ok = false;
    for (long n = 0; n < 500 && !ok; n++) {
        struct config c;
        char err[256];
        emu_alloc_fail_after(n);
        enum config_result r = parse_args(&c, err, sizeof(err), args);
        emu_alloc_fail_after(-1);
        if (r == CONFIG_OK) {
            ok = true;
        } else {
            assert_int_equal(r, CONFIG_ERROR);
            assert_true(err[0] != '\0');
        }
        config_cleanup(&c);
    }
    assert_true(ok);
}

static void
test_config_alloc_failure_loop(void **state)
{
    (void)state;
    const char *const full[] = {
        "--listen",
        "127.0.0.1:2525=greylist",
        "--listen-tls",
        "[::1]:4650",
        "--proxy-protocol",
        "0.0.0.0:2526=x",
        "--hostname",
        "mx.example",
        "--banner",
        "hi",
        "--tls-cert",
        "c",
        "--tls-key",
        "k",
        "--tls-ca",
        "ca",
        "--log-file",
        "f",
        "--spool",
        "d",
        "--xclient-from",
        "10.0.0.0/8,::1,192.0.2.0/24",
        "--scenario",
        "s",
        "--scenario",
        "s2",
        "--set",
        "a.b=c",
        "--set",
        "d=e",
        "--set",
        "f.g=h",
        "--describe",
        "x",
        "--api",
        "127.0.0.1:8080",
        "--api-token",
        "t",
        "--user",
        "u",
        NULL,
    };
    alloc_loop(full);
    /* Only defaults: the default listener, xclient list and scenario. */
    const char *const none[] = {NULL};
    alloc_loop(none);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_cleanup_is_idempotent),
        cmocka_unit_test(test_config_every_option_parsed),
        cmocka_unit_test(test_config_equals_form),
        cmocka_unit_test(test_config_equals_form_keeps_rest_of_value),
        cmocka_unit_test(test_config_later_values_replace_earlier),
        cmocka_unit_test(test_config_actions),
        cmocka_unit_test(test_config_unknown_option_names_it),
        cmocka_unit_test(test_config_rejects_positional_arguments),
        cmocka_unit_test(test_config_value_required_or_forbidden),
        cmocka_unit_test(test_config_bad_numbers),
        cmocka_unit_test(test_config_number_bounds_accepted),
        cmocka_unit_test(test_config_log_levels_and_formats),
        cmocka_unit_test(test_config_parse_size),
        cmocka_unit_test(test_config_bad_listen_addresses),
        cmocka_unit_test(test_config_ipv6_listen),
        cmocka_unit_test(test_config_listen_host_shorthands),
        cmocka_unit_test(test_config_listener_scenario_suffix),
        cmocka_unit_test(test_config_parse_hostport_direct),
        cmocka_unit_test(test_config_parse_redis_url),
        cmocka_unit_test(test_config_api_address),
        cmocka_unit_test(test_config_set_with_scenario_prefix),
        cmocka_unit_test(test_config_set_rejects_malformed),
        cmocka_unit_test(test_config_tls_cert_requires_key),
        cmocka_unit_test(test_config_xclient_from),
        cmocka_unit_test(test_config_rejects_empty_or_multiline_strings),
        cmocka_unit_test(test_config_error_buffer_sizes),
        cmocka_unit_test(test_config_usage_lists_every_option),
        cmocka_unit_test(test_config_alloc_failure_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
