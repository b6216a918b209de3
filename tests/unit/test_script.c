/*
 * test_script: the scenario engine and the Lua helpers, driven through
 * script_check (a scenario's top level runs in a fresh sandboxed state):
 * CIDR and address helpers, reply builders, parameter conversion, the
 * sandbox, and the error paths (syntax error, runtime error, endless loop,
 * memory bomb) with the file and line they report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "emu.h"
#include "kv.h"
#include "scenario.h"
#include "script.h"

static struct config cfg;
static struct emu e;
static struct kv kv;

static int
setup(void **state)
{
    (void)state;
    char *argv[] = {"test",    "--lua-memory", "8M", "--lua-instructions",
                    "1000000", "--seed",       "7"};
    char err[256];
    if (config_parse(7, argv, &cfg, err, sizeof(err)) != CONFIG_OK)
        return -1;
    e.cfg = &cfg;
    str_copy(e.hostname, sizeof(e.hostname), "mx.test");
    if (getcwd(e.base_dir, sizeof(e.base_dir)) == NULL)
        return -1;
    if (kv_init(&kv, 1000) < 0)
        return -1;
    e.kv = &kv;
    return scenario_setup(&e, &cfg, err, sizeof(err));
}

static int
teardown(void **state)
{
    (void)state;
    scenario_teardown(&e);
    kv_cleanup(&kv);
    config_cleanup(&cfg);
    return 0;
}

/* Run `body` followed by a minimal scenario table; returns the result and
 * leaves any error in err. */
static int
check(const char *body, char *err, size_t errlen)
{
    char text[8192];
    snprintf(text, sizeof(text),
             "%s\nreturn { name = \"t\", description = \"test\" }\n", body);
    struct scenario_info info;
    err[0] = '\0';
    return script_check(&e, "test.lua", text, strlen(text), NULL, NULL, 0,
                        &info, err, errlen);
}

#define ASSERT_OK(body)                                                        \
    do {                                                                       \
        char err_[1024];                                                       \
        if (check(body, err_, sizeof(err_)) != 0)                              \
            fail_msg("%s", err_);                                              \
    } while (0)

#define ASSERT_ERR(body, needle)                                               \
    do {                                                                       \
        char err_[1024];                                                       \
        assert_int_equal(check(body, err_, sizeof(err_)), -1);                 \
        if (strstr(err_, needle) == NULL)                                      \
            fail_msg("error '%s' lacks '%s'", err_, needle);                   \
    } while (0)

static void
test_script_cidr_helpers(void **state)
{
    (void)state;
    ASSERT_OK("assert(emu.net.match('10.1.2.3', '10.0.0.0/8'))\n"
              "assert(not emu.net.match('11.0.0.1', '10.0.0.0/8'))\n"
              "local set = emu.net.cidrs({'192.0.2.0/24', '2001:db8::/32'})\n"
              "assert(set:contains('192.0.2.200'))\n"
              "assert(set:contains('::ffff:192.0.2.1'))\n"
              "assert(set:contains('2001:db8:1::5'))\n"
              "assert(not set:contains('2001:db9::1'))\n"
              "assert(not set:contains('not an address'))\n"
              "assert(emu.net.prefix('192.0.2.77', 24, 64) == '192.0.2.0')\n"
              "assert(emu.net.prefix('2001:db8:1:2:3::9', 24, 64) == "
              "'2001:db8:1:2::')\n"
              "assert(emu.net.valid('::1') and not emu.net.valid('1.2.3'))\n");
    ASSERT_ERR("emu.net.cidrs('10.0.0.1/8')", "not an address or CIDR");
    ASSERT_ERR("emu.net.cidrs('300.1.1.1')", "'300.1.1.1'");
}

static void
test_script_address_helper(void **state)
{
    (void)state;
    ASSERT_OK("local a = emu.addr.parse('<Jo.Smith@Example.COM>')\n"
              "assert(a.local_part == 'Jo.Smith' and a.domain == "
              "'Example.COM')\n"
              "assert(emu.addr.parse('postmaster').domain == '')\n"
              "assert(emu.addr.parse('a b@c') == nil)\n"
              "assert(emu.addr.parse('\"a b\"@c').local_part == '\"a b\"')\n");
}

static void
test_script_reply_builders(void **state)
{
    (void)state;
    ASSERT_OK("local d = emu.reply(550, '5.7.26', {'one', 'two'})\n"
              "assert(d.kind == 'reply')\n"
              "assert(d.text == '550 5.7.26 one\\n550 5.7.26 two', d.text)\n"
              "assert(emu.reply(421, nil, 'bye').text == '421 bye')\n"
              "assert(emu.reply('250 ok'):close().next == 'close')\n"
              "assert(emu.reply(250, '2.0.0', 'x'):after(1.5).delay == 1.5)\n"
              "assert(emu.drop().kind == 'drop' and emu.reset().kind == "
              "'reset')\n"
              "assert(emu.hang(3).hang == 3 and emu.partial('25').text == "
              "'25')\n"
              "assert(emu.cut(100, 'reset').cut == 100)\n");
    ASSERT_ERR("emu.reply(99, '5.0.0', 'x')", "bad code 99");
    ASSERT_ERR("emu.reply(550, '5.x', 'x')", "enhanced code '5.x'");
    ASSERT_ERR("emu.reply(550, '5.7.1', 'a\\rb')", "CR or NUL");
    ASSERT_ERR("emu.reply('hello')", "not a valid reply");
    ASSERT_ERR("emu.cut(10, 'explode')", "bad cut_mode");
}

static void
test_script_provider_libraries(void **state)
{
    (void)state;
    ASSERT_OK(
        "local exo = emu.lib('exchange')\n"
        "local s = { tx = {} }\n"
        "local t = exo.connector_restricted(s, 'CID', 'HOST.example').text\n"
        "assert(t:match('^550 5%.7%.51 TenantInboundAttribution; "
        "Rejecting%. Recipient has a partner connector with "
        "RestrictDomainsToIPAddresses or RestrictDomainsToCertificate "
        "set%. Connector ID:CID%. %[HOST%.example "
        "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ %x+%]$'), t)\n"
        "assert(#exo.message_id(s) == 16 and exo.message_id(s) == "
        "exo.message_id(s))\n"
        "local g = emu.lib('gmail')\n"
        "local gs = { data = {} }\n"
        "local r = g.reply(gs, 550, '5.1.1', {'a', 'b'}).text\n"
        "assert(r:match('^550 5%.1%.1 a\\n550 5%.1%.1 b "
        "%x%x%x%x%x%x%x%x%x%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%xsi%d+%l%x%x%.%d+ "
        "%- gsmtp$'), r)\n"
        "local pf = emu.lib('postfix')\n"
        "local ps = { client_ip = '192.0.2.1', client_name = 'unknown' }\n"
        "assert(pf.client_access_denied(ps).text == '554 5.7.1 "
        "<unknown[192.0.2.1]>: Client host rejected: Access denied')\n");
    ASSERT_ERR("emu.lib('nosuch')", "no module lua/nosuch.lua");
    ASSERT_ERR("emu.lib('../etc')", "bad module name");
}

static void
test_script_params_conversion(void **state)
{
    (void)state;
    ASSERT_OK(
        "local p = emu._build_params({n = {default = 5}, f = {default = 1.5},"
        " b = {default = false}, l = {default = {'a'}}, c = {default = "
        "{'10.0.0.0/8'}, type = 'cidrs'}, ch = {default = 'x', choices = "
        "{'x', 'y'}}}, {n = '7', f = '2.25', b = 'yes', l = ' p, q ,r', ch = "
        "'y'})\n"
        "assert(p.n == 7 and math.type(p.n) == 'integer')\n"
        "assert(p.f == 2.25 and p.b == true and #p.l == 3 and p.l[2] == "
        "'q')\n"
        "assert(p.ch == 'y' and p.c[1] == '10.0.0.0/8')\n"
        "assert(not pcall(function() p.n = 1 end))\n");
    ASSERT_ERR("emu._build_params({n = {default = 5}}, {n = 'x'})",
               "parameter 'n': expected a whole number, got 'x'");
    ASSERT_ERR("emu._build_params({n = {default = 5}}, {m = '1'})",
               "unknown parameter 'm' (known: n)");
    ASSERT_ERR("emu._build_params({c = {default = 'a', choices = {'a'}}}, "
               "{c = 'b'})",
               "'b' is not one of: a");
    ASSERT_ERR("emu._build_params({c = {type = 'cidrs', default = {}}}, "
               "{c = '1.2.3.4,nope'})",
               "'nope' is not an address or CIDR");
}

static void
test_script_sandbox(void **state)
{
    (void)state;
    ASSERT_OK("assert(io == nil and os == nil and debug == nil)\n"
              "assert(load == nil and loadfile == nil and dofile == nil)\n"
              "assert(require == nil and collectgarbage == nil)\n"
              "assert(coroutine == nil and package == nil)\n"
              "assert(string.format('%d', 3) == '3' and ('x'):upper() == "
              "'X')\n"
              "assert(emu.api_version == 1)\n");
    ASSERT_ERR("x = 1", "test.lua:1: test.lua: assignment to global 'x'");
    ASSERT_ERR("string.upper = nil", "string is read-only");
    ASSERT_ERR("emu.reply = nil", "emu is read-only");
}

static void
test_script_error_paths_name_file_and_line(void **state)
{
    (void)state;
    ASSERT_ERR("local a = 1\nlocal = 2", "test.lua:2:");
    ASSERT_ERR("local t = nil\n\nlocal x = t.field", "test.lua:3: attempt "
                                                     "to index");
    ASSERT_ERR("local n = 0\nwhile true do n = n + 1 end",
               "test.lua:2: scenario ran too long");
    ASSERT_ERR("pcall(function() while true do end end)\nwhile true do end",
               "scenario ran too long");
    ASSERT_ERR("local t = {}\nfor i = 1, 1e9 do t[i] = string.rep('x', "
               "4096) .. i end",
               "not enough memory");
    /* The state is fresh each time: nothing leaks between checks. */
    ASSERT_OK("assert(true)");
}

static void
test_script_scenario_shape(void **state)
{
    (void)state;
    struct scenario_info info;
    char err[512];
    const char *bad[][2] = {
        {"return 5", "a scenario must return a table"},
        {"return {description = 'd'}", "needs a name"},
        {"return {name = 'n'}", "needs a description"},
        {"return {name = 'n', description = 'd', on_rpct = function() "
         "end}",
         "unknown key 'on_rpct'"},
        {"return {name = 'n', description = 'd', on_rcpt = 5}",
         "on_rcpt must be a function"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(script_check(&e, "x.lua", bad[i][0], strlen(bad[i][0]),
                                      NULL, NULL, 0, &info, err, sizeof(err)),
                         -1);
        if (strstr(err, bad[i][1]) == NULL)
            fail_msg("'%s' gave '%s'", bad[i][0], err);
    }
    const char *good = "return {name = 'n', description = 'd', params = {"
                       "b = {default = 2, help = 'bee'}, a = {default = {'x',"
                       " 'y'}}}, replies = 'text'}";
    assert_int_equal(script_check(&e, "x.lua", good, strlen(good), NULL, NULL,
                                  0, &info, err, sizeof(err)),
                     0);
    assert_string_equal(info.name, "n");
    assert_int_equal(info.n_params, 2);
    assert_string_equal(info.params[0].name, "a");
    assert_string_equal(info.params[0].type, "list");
    assert_string_equal(info.params[0].def, "x,y");
    assert_string_equal(info.params[1].type, "integer");
    assert_string_equal(info.params[1].help, "bee");
    assert_string_equal(info.replies, "text");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_cidr_helpers),
        cmocka_unit_test(test_script_address_helper),
        cmocka_unit_test(test_script_reply_builders),
        cmocka_unit_test(test_script_provider_libraries),
        cmocka_unit_test(test_script_params_conversion),
        cmocka_unit_test(test_script_sandbox),
        cmocka_unit_test(test_script_error_paths_name_file_and_line),
        cmocka_unit_test(test_script_scenario_shape),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
