-- lua/prelude.lua: the Lua half of the emu library, loaded into every
-- scenario state before the scenario itself. It defines the decision
-- constructors, checks a scenario's shape, turns --set strings into typed
-- parameters, and builds the read-only sandbox scenarios run in.
local emu = ...

---------------------------------------------------------------------------
-- Decisions: what a hook returns. emu.reply is in C (it validates codes).

local D = emu._decision_methods

-- Reply, then close the connection (FIN).
function D:close() self.next = "close"; return self end
-- Reply, then abort the connection (RST).
function D:reset() self.next = "reset"; return self end
-- Reply, then stop answering; the socket stays open `seconds` (600).
function D:hang(seconds) self.next = "hang"; self.hang = seconds; return self end
-- Reply, then wait for the client's next bytes and close (or reset):
-- after "220 Ready to start TLS" this breaks the handshake mid-way.
function D:close_on_input() self.next = "close_on_input"; return self end
function D:reset_on_input() self.next = "reset_on_input"; return self end
-- Act only after `seconds` (a timer; other sessions go on).
function D:after(seconds) self.delay = seconds; return self end
-- Send each line of the reply `seconds` after the previous one (tarpit).
function D:slowly(seconds) self.line_delay = seconds; return self end

local function decision(t) return emu._decision(t) end

function emu.default() return decision{ kind = "default" } end
function emu.delay(seconds) return decision{ kind = "default", delay = seconds } end
-- The default reply, one line every `seconds` (a tarpit).
function emu.slowly(seconds) return decision{ kind = "default", line_delay = seconds } end
-- From on_tls: the server certificate and TLS versions for this handshake.
-- cert: "default", "expired", "selfsigned" or "wronghost" (certs/server-*.pem);
-- versions: "1.0-1.1", "1.2", "1.3", "1.2-1.3", ...
function emu.tls(opts)
  return decision{ kind = "default", tls_cert = opts.cert, tls_versions = opts.versions }
end
function emu.drop() return decision{ kind = "drop" } end
function emu.reset() return decision{ kind = "reset" } end
function emu.hang(seconds) return decision{ kind = "hang", hang = seconds } end
-- Send these bytes as they are (no CRLF added), then close.
function emu.partial(bytes) return decision{ kind = "partial", text = bytes } end
-- At the data stage: accept the DATA/BDAT command, then after `bytes` of
-- the message do `mode` ("close", "reset" or "hang") instead of reading on.
function emu.cut(bytes, mode)
  return decision{ kind = "default", cut = bytes, cut_mode = mode or "close" }
end

---------------------------------------------------------------------------
-- The message at the message stage (m.raw, m.headers, m.body, m.size).

local M = emu._message_methods
local name_params = emu._name_params

local header = emu._header

-- First value of a header, case-insensitive, or nil.
function M:header(name)
  return header(self.headers, name)
end

-- Every value of a header, in order.
function M:header_all(name)
  return header(self.headers, name, true)
end

-- File names of MIME parts (filename= or name= parameters), with the
-- RFC 2231 forms mail clients use for non-ASCII or long names decoded:
-- filename*=utf-8''%D1%84.exe, and filename*0*=...; filename*1*=... joined.
function M:attachments()
  local raw = self.raw
  -- emu._name_params(raw) lists the matches of
  -- raw:gmatch('[; \t\r\n]f?i?l?e?name([%*%d]*)=%s*()') in one C pass.
  local hits = name_params(raw)
  if hits[1] == nil then return {} end
  local out, seen, pieces = {}, {}, {}
  local function add(v)
    v = v:gsub("^%s+", ""):gsub("%s+$", "")
    if v ~= "" and not seen[v] then seen[v] = true; out[#out + 1] = v end
  end
  local function flush()
    if #pieces > 0 then add(table.concat(pieces)); pieces = {} end
  end
  for i = 1, #hits, 2 do
    local suffix, at = hits[i], hits[i + 1]
    local v = raw:match('^"([^"\r\n]*)"', at) or raw:match("^'([^'\r\n]*)'", at)
      or raw:match('^([^"\r\n;]+)', at)
    local section, star = suffix:match("^%*(%d+)(%*?)$")
    if v and (section or suffix == "" or suffix == "*") then
      if suffix == "*" or star == "*" then -- charset'language'%XX-encoded
        if not section or section == "0" then v = v:gsub("^[^']*'[^']*'", "") end
        v = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
      end
      if section then
        if section == "0" then flush() end
        pieces[#pieces + 1] = v
      else
        flush()
        add(v)
      end
    end
  end
  flush()
  return out
end

---------------------------------------------------------------------------
-- The sandbox.

local function readonly(t, what)
  return setmetatable({}, {
    __index = t,
    __newindex = function(_, k)
      error(("%s is read-only (cannot set '%s')"):format(what, tostring(k)), 2)
    end,
    __len = function() return #t end,
    __pairs = function() return next, t, nil end,
    __metatable = false,
  })
end

local lib = {
  assert = assert, error = error, ipairs = ipairs, next = next,
  pairs = pairs, pcall = pcall, rawequal = rawequal, rawget = rawget,
  rawlen = rawlen, select = select, tonumber = tonumber,
  tostring = tostring, type = type, xpcall = xpcall, print = print,
  setmetatable = setmetatable, getmetatable = getmetatable,
  _VERSION = _VERSION,
  string = readonly(string, "string"), table = readonly(table, "table"),
  math = readonly(math, "math"), utf8 = readonly(utf8, "utf8"),
  emu = readonly(emu, "emu"),
}
local frozen = readonly(lib, "the standard library")

-- A fresh _ENV for one file: reads fall through to the library; a global
-- assignment is an error (a scenario keeps state in s.data, s.tx or
-- emu.state, never in globals shared by every session).
function emu._sandbox(file)
  return setmetatable({}, {
    __index = frozen,
    __newindex = function(_, k)
      error(("%s: assignment to global '%s': use local, s.data, s.tx or emu.state")
        :format(file, tostring(k)), 2)
    end,
  })
end

---------------------------------------------------------------------------
-- Scenario shape and parameters.

local HOOKS = {
  on_connect = true, on_ehlo = true, on_starttls = true, on_auth = true,
  on_mail = true, on_rcpt = true, on_data = true, on_message = true,
  on_quit = true, on_disconnect = true, on_command = true, on_tls = true,
}
local FIELDS = { name = true, description = true, params = true, replies = true, check = true }

function emu._check_scenario(t, file)
  if type(t) ~= "table" then
    error(("%s: a scenario must return a table (got %s)"):format(file, type(t)), 0)
  end
  if type(t.name) ~= "string" or t.name == "" then
    error(("%s: the scenario table needs a name"):format(file), 0)
  end
  if type(t.description) ~= "string" then
    error(("%s: the scenario table needs a description"):format(file), 0)
  end
  if t.params ~= nil and type(t.params) ~= "table" then
    error(("%s: params must be a table"):format(file), 0)
  end
  if t.check ~= nil and type(t.check) ~= "function" then
    error(("%s: check must be a function"):format(file), 0)
  end
  for k, v in pairs(t) do
    if HOOKS[k] then
      if type(v) ~= "function" then
        error(("%s: %s must be a function"):format(file, k), 0)
      end
    elseif not FIELDS[k] then
      local hint = type(k) == "string" and k:match("^on_") and
        " (hooks: on_connect, on_ehlo, on_starttls, on_auth, on_mail, on_rcpt, on_data, on_message, on_quit, on_disconnect, on_command, on_tls)" or
        " (fields: name, description, params, replies, check, on_*)"
      error(("%s: unknown key '%s'%s"):format(file, tostring(k), hint), 0)
    end
  end
  for name, spec in pairs(t.params or {}) do
    if type(name) ~= "string" or type(spec) ~= "table" then
      error(("%s: params.%s must be a table {default=..., help=...}"):format(file, tostring(name)), 0)
    end
  end
end

local function param_type(spec)
  if spec.type then return spec.type end
  if spec.choices then return "string" end
  local d = spec.default
  if type(d) == "number" then return math.type(d) == "integer" and "integer" or "number" end
  if type(d) == "boolean" then return "boolean" end
  if type(d) == "table" then return "list" end
  return "string"
end

local function split_list(s)
  local out = {}
  for item in tostring(s):gmatch("[^,]+") do
    item = item:gsub("^%s+", ""):gsub("%s+$", "")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

local TRUE = { ["true"] = true, yes = true, on = true, ["1"] = true }
local FALSE = { ["false"] = true, no = true, off = true, ["0"] = true }

-- Turn one value (a default, or a --set string) into the parameter's type.
local function convert(name, spec, v)
  local ty = param_type(spec)
  local function bad(want)
    error(("parameter '%s': expected %s, got '%s'"):format(name, want, tostring(v)), 0)
  end
  local out
  if ty == "number" then
    out = tonumber(v) or bad("a number")
  elseif ty == "integer" then
    out = math.tointeger(tonumber(v)) or bad("a whole number")
  elseif ty == "boolean" then
    if type(v) == "boolean" then out = v
    elseif TRUE[tostring(v):lower()] then out = true
    elseif FALSE[tostring(v):lower()] then out = false
    else bad("true or false") end
  elseif ty == "list" or ty == "cidrs" then
    out = type(v) == "table" and v or split_list(v)
    for i, item in ipairs(out) do
      if type(item) ~= "string" then bad("a list of strings") end
      if ty == "cidrs" then
        local ok, err = pcall(emu.net.cidrs, item)
        if not ok then
          error(("parameter '%s': '%s' is not an address or CIDR"):format(name, item), 0)
        end
      end
    end
    out = readonly(out, "parameter '" .. name .. "'")
  elseif ty == "string" then
    if type(v) ~= "string" and type(v) ~= "number" then bad("a string") end
    out = tostring(v)
  else
    error(("parameter '%s': unknown type '%s'"):format(name, tostring(ty)), 0)
  end
  if spec.choices then
    local ok = false
    for _, c in ipairs(spec.choices) do if c == out then ok = true end end
    if not ok then
      error(("parameter '%s': '%s' is not one of: %s"):format(
        name, tostring(v), table.concat(spec.choices, ", ")), 0)
    end
  end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- spec: the scenario's params table; overrides: name -> string.
function emu._build_params(spec, overrides)
  spec = spec or {}
  local out = {}
  for _, name in ipairs(sorted_keys(spec)) do
    local s = spec[name]
    if s.default ~= nil then out[name] = convert(name, s, s.default) end
  end
  for name, v in pairs(overrides) do
    local s = spec[name]
    if not s then
      local known = sorted_keys(spec)
      error(("unknown parameter '%s' (%s)"):format(name,
        #known > 0 and ("known: " .. table.concat(known, ", ")) or
        "this scenario has no parameters"), 0)
    end
    out[name] = convert(name, s, v)
  end
  return readonly(out, "params")
end

-- The parameters of scenario table t with overrides, checked by the
-- scenario's own check(p) when it has one: it returns nothing when the
-- combination is fine, or a message saying what is wrong, which refuses
-- the parameters (exit status 2 at start, 400 from the API) before any
-- session sees them.
function emu._params_for(t, overrides)
  local p = emu._build_params(t.params, overrides)
  if t.check then
    local msg = t.check(p)
    if msg ~= nil then
      error(("%s: %s"):format(t.name, tostring(msg)), 0)
    end
  end
  return p
end

-- Rows for --describe and the API.
function emu._describe_params(spec)
  local rows = {}
  for _, name in ipairs(sorted_keys(spec)) do
    local s = spec[name]
    local d = s.default
    if type(d) == "table" then d = table.concat(d, ",") end
    rows[#rows + 1] = {
      name = name, type = param_type(s), default = d ~= nil and tostring(d) or "",
      help = s.help or "", choices = s.choices and table.concat(s.choices, ", ") or "",
    }
  end
  return rows
end

---------------------------------------------------------------------------
-- Composition: one scenario handing a stage to another (the router).

local used = {}

local function key_of(name, overrides)
  local keys = {}
  for k in pairs(overrides or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = { name }
  for _, k in ipairs(keys) do
    local v = overrides[k]
    if type(v) == "table" then v = table.concat(v, ",") end
    parts[#parts + 1] = k .. "=" .. tostring(v)
  end
  return table.concat(parts, "\0")
end

-- emu.use("greylisting", {delay = 5}) -> a handle whose hooks run with
-- that scenario's own parameters: h:call("on_rcpt", s, rcpt). Loaded once
-- per state and parameter set.
function emu.use(name, overrides)
  local key = key_of(name, overrides)
  local h = used[key]
  if h then return h end
  local chunk, file = emu._scenario(name)
  local t = chunk()
  emu._check_scenario(t, file)
  local p = emu._params_for(t, overrides or {})
  h = { name = t.name, params = p, scenario = t }
  function h:call(hook, s, x)
    local f = t[hook]
    if f then return f(s, x, p) end
    return nil
  end
  function h:has(hook) return t[hook] ~= nil end
  used[key] = h
  return h
end
