/*
 * fuzz_lua_bridge: values a scenario hands to the C side of the Lua
 * bridge. Each input becomes a scenario text: the input bytes as a Lua
 * string, followed by a fixed interpreter (PROGRAM below) that decodes
 * them into Lua values (nil, booleans, odd numbers, strings, tables shaped
 * like decisions, real decisions from the constructors) and feeds them to
 * emu._decision (script_api_to_decision: the conversion every hook result
 * goes through), emu.reply (reply_finish/reply_build), the decision
 * methods, and every other emu.* C function; each call runs under pcall,
 * so a refusal is a Lua error and not the end of the input. The top level
 * then returns a scenario table, possibly malformed, with parameters that
 * the input's --set values must be converted to. script_check runs all of
 * it in a fresh sandboxed state with a small memory cap and instruction
 * budget, as --check-scenario does. Invariants: no crash, no leak, and a
 * failed check always explains itself in one line.
 *
 * Input layout: byte 0 holds the number of --set pairs (0-3) in its low
 * bits; each pair is [key index][value length][value bytes]; the rest is
 * the program's data.
 */
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "emu.h"
#include "fuzz.h"
#include "kv.h"
#include "log.h"
#include "scenario.h"
#include "script.h"

#ifndef FUZZ_SRC_DIR
#define FUZZ_SRC_DIR "."
#endif

#define MAX_DATA 4096

static const char PROGRAM[] =
    "local pos = 1\n"
    "local function u8() local b = D:byte(pos); pos = pos + 1; return b or 0 "
    "end\n"
    "local W = {'reply', 'drop', 'reset', 'hang', 'partial', 'default',\n"
    "  'close', 'none', 'close_on_input', 'reset_on_input', 'explode',\n"
    "  '250 2.0.0 Ok', '550 5.7.1 Denied', '421 4.4.2 Bye\\n421 4.4.2 x',\n"
    "  '451-a\\n451 b', '250', '25', '5.7.1', '2.0.0', '9.9.9', '', 'x',\n"
    "  '\\r\\n', 'a\\0b', '10.0.0.0/8', '::1', '192.0.2.1', '1.5', '-1',\n"
    "  'nan', '1e400', '0x10', 'accept', 'greylisting', 'gmail', 'postfix',\n"
    "  'exchange', '../x', 'a,b, c', 'true', 'yes', 'integer', 'number',\n"
    "  'boolean', 'list', 'cidrs', 'string', 'user@example.com', "
    "'<a@b>'}\n"
    "local DK = {'kind', 'text', 'delay', 'hang', 'next', 'cut', "
    "'cut_mode',\n"
    "  'line_delay', 'tls_cert', 'tls_versions', 1, 'x'}\n"
    "local PK = {'default', 'type', 'choices', 'help', 'min', 'max'}\n"
    "local NAMES = {'a', 'b', 'mode', 'list', 'n'}\n"
    "local function str()\n"
    "  local n = u8() % 48\n"
    "  local s = D:sub(pos, pos + n - 1); pos = pos + n; return s\n"
    "end\n"
    "local function num()\n"
    "  local k = u8() % 12\n"
    "  if k == 0 then return 0 elseif k == 1 then return -1\n"
    "  elseif k == 2 then return 0.5 elseif k == 3 then return 1e300\n"
    "  elseif k == 4 then return -1/0 elseif k == 5 then return 0/0\n"
    "  elseif k == 6 then return math.maxinteger\n"
    "  elseif k == 7 then return math.mininteger\n"
    "  elseif k == 8 then return 86400.0005 elseif k == 9 then return 1e15\n"
    "  elseif k == 10 then return u8() * 256 + u8()\n"
    "  else return (u8() * 256 + u8()) / (u8() + 1) end\n"
    "end\n"
    "local val\n"
    "local function make(d)\n"
    "  local k = u8() % 12\n"
    "  local r\n"
    "  if k == 0 then r = emu.reply(val(d), val(d), val(d))\n"
    "  elseif k == 1 then r = emu.reply(val(d))\n"
    "  elseif k == 2 then r = emu.drop()\n"
    "  elseif k == 3 then r = emu.reset()\n"
    "  elseif k == 4 then r = emu.hang(val(d))\n"
    "  elseif k == 5 then r = emu.partial(val(d))\n"
    "  elseif k == 6 then r = emu.cut(val(d), val(d))\n"
    "  elseif k == 7 then r = emu.delay(val(d))\n"
    "  elseif k == 8 then r = emu.slowly(val(d))\n"
    "  elseif k == 9 then r = emu.tls({cert = val(d), versions = val(d)})\n"
    "  elseif k == 10 then r = emu.reply(u8() + 200, W[u8() % #W + 1],\n"
    "    {str(), string.rep(str(), u8() % 128)})\n"
    "  else r = emu.default() end\n"
    "  local M = {'close', 'reset', 'hang', 'after', 'slowly', "
    "'close_on_input',\n"
    "    'reset_on_input'}\n"
    "  for _ = 1, u8() % 3 do\n"
    "    local m = M[u8() % #M + 1]\n"
    "    r = r[m](r, val(d))\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "val = function(d)\n"
    "  local t = u8() % 14\n"
    "  if t == 0 then return nil\n"
    "  elseif t == 1 then return u8() % 2 == 0\n"
    "  elseif t == 2 then return num()\n"
    "  elseif t == 3 then return str()\n"
    "  elseif t == 4 then return W[u8() % #W + 1]\n"
    "  elseif t == 5 and d < 4 then\n"
    "    local r = {}\n"
    "    for _ = 1, u8() % 7 do r[DK[u8() % #DK + 1]] = val(d + 1) end\n"
    "    return r\n"
    "  elseif t == 6 and d < 4 then\n"
    "    local r = {}\n"
    "    for _ = 1, u8() % 5 do\n"
    "      local k = val(d + 1)\n"
    "      if k ~= nil and k == k then r[k] = val(d + 1) end\n"
    "    end\n"
    "    return r\n"
    "  elseif t == 7 and d < 4 then\n"
    "    local ok, r = pcall(make, d + 1)\n"
    "    if ok then return r end\n"
    "    return nil\n"
    "  elseif t == 8 then return print\n"
    "  elseif t == 9 then return emu\n"
    "  elseif t == 10 and d < 4 then return {val(d + 1), val(d + 1)}\n"
    "  elseif t == 11 then return string.rep(str(), u8())\n"
    "  elseif t == 12 then return u8() - 128\n"
    "  else return W[u8() % #W + 1] end\n"
    "end\n"
    "local function spec(d)\n"
    "  local r = {}\n"
    "  for _ = 1, u8() % 4 do\n"
    "    local p = {}\n"
    "    for _ = 1, u8() % 4 do p[PK[u8() % #PK + 1]] = val(d) end\n"
    "    r[NAMES[u8() % #NAMES + 1]] = p\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "local F = {emu.reply, emu._decision, emu.now, emu.utc, emu.random,\n"
    "  emu.random_hex, emu.random_string, emu.log, print, "
    "emu.base64_encode,\n"
    "  emu.base64_decode, emu.lib, emu._scenario, emu.state.get,\n"
    "  emu.state.set, emu.state.incr, emu.state.del, emu.net.cidrs,\n"
    "  emu.net.match, emu.net.prefix, emu.net.valid, emu.addr.parse,\n"
    "  emu._build_params, emu._describe_params, emu._check_scenario}\n"
    "for _ = 1, u8() % 65 do\n"
    "  local op = u8() % 5\n"
    "  if op == 0 then pcall(emu._decision, val(0))\n"
    "  elseif op == 1 then pcall(make, 0)\n"
    "  elseif op == 2 then\n"
    "    local f = F[u8() % #F + 1]\n"
    "    pcall(f, val(0), val(0), val(0))\n"
    "  elseif op == 3 then pcall(emu._build_params, spec(0), {[NAMES[u8() % "
    "#NAMES + 1]] = val(0)})\n"
    "  else\n"
    "    local ok, d = pcall(make, 0)\n"
    "    if ok and type(d) == 'table' then\n"
    "      d[DK[u8() % #DK + 1]] = val(0)\n"
    "      pcall(emu._decision, d)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local shape = u8() % 4\n"
    "if shape == 0 then return val(0) end\n"
    "local t = {name = 'fuzz', description = 'fuzzed', params = spec(0)}\n"
    "if shape == 2 then\n"
    "  t.name = val(0); t.description = val(0); t.replies = val(0)\n"
    "elseif shape == 3 then\n"
    "  t[W[u8() % #W + 1]] = val(0)\n"
    "  t.on_mail = function() return val(0) end\n"
    "end\n"
    "return t\n";

static struct config cfg;
static struct emu e;
static struct kv kv;
static bool ready;

static void
setup(void)
{
    char *argv[] = {"fuzz",   "--lua-memory", "4M", "--lua-instructions",
                    "400000", "--seed",       "1"};
    char err[1024];
    FUZZ_ASSERT(config_parse(7, argv, &cfg, err, sizeof(err)) == CONFIG_OK);
    e.cfg = &cfg;
    str_copy(e.hostname, sizeof(e.hostname), "mx.test");
    const char *dir = getenv("EMU_SRC_DIR");
    str_copy(e.base_dir, sizeof(e.base_dir), dir ? dir : FUZZ_SRC_DIR);
    e.log = log_new("/dev/null", LOG_FORMAT_TEXT, LOG_LEVEL_INFO);
    FUZZ_ASSERT(e.log != NULL);
    FUZZ_ASSERT(kv_init(&kv, 1000) == 0);
    e.kv = &kv;
    if (scenario_setup(&e, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_lua_bridge: %s (set EMU_SRC_DIR)\n", err);
        abort();
    }
    ready = true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const key_names[] = {"a",    "b", "mode",
                                            "list", "n", "zz"};
    if (!ready)
        setup();

    size_t pos = 0;
    unsigned n_sets = size ? data[pos++] % 4 : 0;
    char vals_buf[3][256];
    const char *keys[3], *vals[3];
    size_t n = 0;
    for (unsigned i = 0; i < n_sets && pos + 2 <= size; i++) {
        keys[n] = key_names[data[pos++] % EMU_ARRAY_LEN(key_names)];
        size_t vl = data[pos++];
        if (vl > size - pos)
            vl = size - pos;
        memcpy(vals_buf[n], data + pos, vl);
        vals_buf[n][vl] = '\0'; /* a NUL inside ends it, as in argv */
        vals[n] = vals_buf[n];
        pos += vl;
        n++;
    }
    size_t dl = size - pos;
    if (dl > MAX_DATA)
        dl = MAX_DATA;

    /* "local D = '\ddd...'" then the program. */
    struct buf text = {0};
    FUZZ_ASSERT(buf_append_str(&text, "local D = \"") == 0);
    for (size_t i = 0; i < dl; i++)
        FUZZ_ASSERT(buf_printf(&text, "\\%03u", data[pos + i]) == 0);
    FUZZ_ASSERT(buf_append_str(&text, "\"\n") == 0);
    FUZZ_ASSERT(buf_append_str(&text, PROGRAM) == 0);

    struct scenario_info *info = malloc(sizeof(*info));
    FUZZ_ASSERT(info != NULL);
    char err[1024];
    memset(err, 0, sizeof(err));
    int rc = script_check(&e, "fuzz.lua", text.data, text.len, keys, vals, n,
                          info, err, sizeof(err));
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "script_check: %d %s\n", rc, rc < 0 ? err : "ok");
    if (rc < 0) {
        FUZZ_ASSERT(err[0] != '\0');
        FUZZ_ASSERT(strchr(err, '\n') == NULL);
    } else {
        FUZZ_ASSERT(rc == 0);
        FUZZ_ASSERT(info->n_params <= EMU_ARRAY_LEN(info->params));
        FUZZ_ASSERT(memchr(info->name, '\0', sizeof(info->name)) != NULL);
    }
    free(info);
    buf_cleanup(&text);
    log_flush(e.log);
    return 0;
}
