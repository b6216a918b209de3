-- scenarios/router.lua
--
-- One server, many behaviours, chosen by the recipient address -- like
-- the AWS SES mailbox simulator: a test sends to greylist@..., full@...,
-- eof-at-data@... and gets that failure, while every other address is
-- served by the `default` scenario. The work is done by the other
-- scenarios: each route names a scenario and its parameters, and the
-- router hands it the stage (emu.use(name, params), then
-- handle:call("on_rcpt", s, rcpt) and so on), so nothing here repeats
-- their code or their reply lines.
--
-- Which scenario serves what:
--   RCPT           the recipient's route: its scenario's on_rcpt decides
--                  (each recipient of a message may take another route)
--   DATA, message  the route of the first accepted recipient (s.rcpts[1]),
--                  kept in s.tx for the rest of the message
--   everything else (connect, EHLO, STARTTLS and the TLS set-up, AUTH,
--                  MAIL, QUIT, on_command): the `default` route -- no
--                  recipient is known yet. A routed scenario's hooks for
--                  these stages therefore do not run for its recipients.
--
-- A recipient's route: the first that matches of
--   1. a `routes` entry for the whole address (user@example.com=...)
--   2. a `routes` entry for its local part (user=...)
--   3. a `routes` entry for its domain (@example.com=...)
--   4. a built-in address (local part, below), unless builtins=false
--   5. `default`
-- Local parts and domains compare case-insensitively.
--
-- The `routes` parameter is a comma-separated list of entries
--   WHO=SCENARIO[:KEY=VALUE[:KEY=VALUE...]]
-- e.g. --set routes='vip=accept,@partner.example=ip-allowlist:style=postfix,
-- bulk=rate-limit:limit=0:style=gmail-receiving:count=message'. A value
-- is percent-decoded, so a ',' ':' '=' or '%' in it is written %2C %3A
-- %3D %25 (chance:reply=451 4.3.0 Error%3A try again). Instead of a
-- scenario, a route may name a built-in address as LOCALPART@:
-- --set routes=bob=full@,@quota.example=full-permanent@ gives bob@ and
-- all of quota.example Gmail's over-quota refusals. `default` is one
-- SCENARIO[:KEY=VALUE...] or LOCALPART@.
-- The router's check(p) parses every route and loads every scenario they
-- name when the parameters are set: a bad entry stops the start with exit
-- status 2 (or gets 400 from the API), naming the entry.
-- Routed scenarios share the router's emu.state (its keys are the
-- router's), so two routes to the same scenario share their counters.
--
-- Built-in addresses (replies: those of the scenario named; the two
-- `full` replies are the router's own):
--   success@         accept
--   greylist@        greylisting:delay=GREYLIST_DELAY   postgrey's 450 4.2.0 (replies.md 4.1)
--   reject-5.7.51@   ip-allowlist:allow=                 Exchange Online's 550 5.7.51 (1.1a)
--   unknown@         triggers:always=rcpt550_5.1.1      550 5.1.1 ... User unknown in local recipient table (6.10)
--   relay-denied@    triggers:always=rcpt554_5.7.1      554 5.7.1 <RCPT>: Relay access denied (1.7)
--   spam@            triggers:always=message554_5.7.1   554 5.7.1 Spam message rejected after the data (5.1a)
--   eof-at-rcpt@, eof-at-data@, eof-at-message@
--                    abrupt-eof:at=rcpt|data|message    the connection closes instead of that reply
--   slow@            tarpit:rcpt=SLOW:data=SLOW:message=SLOW   each of those replies SLOW_DELAY s late
--   full@            Gmail's temporary over-quota refusal at RCPT, session kept
--                    (docs/reply-sources.md 4d, lines derived from the joined capture; replies.md 6.5):
--                      452-4.2.2 The recipient's inbox is out of storage space. Please direct the
--                      452-4.2.2 recipient to
--                      452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp ID - gsmtp
--   full-permanent@  Gmail's permanent one (replies.md 6.4, lines derived from the
--                    Postfix-rewrapped capture, which shows one space before the URL):
--                      552-5.2.2 The recipient's inbox is out of storage space and inactive. Please
--                      552-5.2.2 direct the recipient to
--                      552 5.2.2 https://support.google.com/mail/?p=OverQuotaPerm ID - gsmtp
local gmail = emu.lib("gmail")

-- Built-in routes that are the router's own: a handle-shaped table.
local function native(hooks)
  local h = { name = "router" }
  function h:call(hook, s, x)
    local f = hooks[hook]
    if f then return f(s, x) end
    return nil
  end
  return h
end

local FULL = native {
  on_rcpt = function(s)
    return gmail.reply(s, 452, "4.2.2", {
      "The recipient's inbox is out of storage space. Please direct the",
      "recipient to",
      " https://support.google.com/mail/?p=OverQuotaTemp",
    })
  end,
}

local FULL_PERMANENT = native {
  on_rcpt = function(s)
    return gmail.reply(s, 552, "5.2.2", {
      "The recipient's inbox is out of storage space and inactive. Please",
      "direct the recipient to",
      "https://support.google.com/mail/?p=OverQuotaPerm",
    })
  end,
}

local function builtin_specs(p)
  local slow = ("%g"):format(p.slow_delay)
  return {
    success = "accept",
    greylist = ("greylisting:delay=%g"):format(p.greylist_delay),
    ["reject-5.7.51"] = "ip-allowlist:allow=",
    unknown = "triggers:always=rcpt550_5.1.1",
    ["relay-denied"] = "triggers:always=rcpt554_5.7.1",
    spam = "triggers:always=message554_5.7.1",
    ["eof-at-rcpt"] = "abrupt-eof:at=rcpt",
    ["eof-at-data"] = "abrupt-eof:at=data",
    ["eof-at-message"] = "abrupt-eof:at=message",
    slow = ("tarpit:rcpt=%s:data=%s:message=%s"):format(slow, slow, slow),
  }
end

local function unescape(v)
  return (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "SCENARIO[:KEY=VALUE...]" -> a route { spec, name, params } (its handle
-- comes later, from handle()). "LOCALPART@" names a built-in address
-- instead (builtins: the table of built-in routes).
local function parse_spec(spec, what, builtins)
  local alias = spec:match("^%s*([^:@%s]+)@%s*$")
  if alias and builtins then
    local route = builtins[alias:lower()]
    if not route then
      error(("router: %s '%s': no built-in address %s@"):format(what, spec, alias), 0)
    end
    return route
  end
  local parts = {}
  for piece in (spec .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = piece end
  local name = unescape(parts[1] or ""):gsub("^%s+", ""):gsub("%s+$", "")
  if name == "" then
    error(("router: %s '%s' names no scenario (want SCENARIO[:KEY=VALUE...])"):format(what, spec), 0)
  end
  if name == "router" then
    error(("router: %s '%s' routes to the router itself"):format(what, spec), 0)
  end
  local params = {}
  for i = 2, #parts do
    local k, v = parts[i]:match("^([^=]+)=(.*)$")
    if not k then
      error(("router: %s '%s': '%s' is not KEY=VALUE"):format(what, spec, parts[i]), 0)
    end
    params[unescape(k)] = unescape(v)
  end
  return { spec = spec, name = name, params = params }
end

-- The scenario behind a route, loaded once (emu.use caches it per state).
local function handle(route)
  if not route.handle then
    local ok, h = pcall(emu.use, route.name, route.params)
    if not ok then error(("router: route '%s': %s"):format(route.spec, tostring(h)), 0) end
    route.handle = h
  end
  return route.handle
end

-- The parsed parameters, once per parameter table.
local tables = setmetatable({}, { __mode = "k" })

local function routing(p)
  local r = tables[p]
  if r then return r end
  -- The built-in addresses: matched by local part when builtins=true,
  -- and always reachable from a route as "LOCALPART@".
  local builtin = {
    full = { spec = "full@", handle = FULL },
    ["full-permanent"] = { spec = "full-permanent@", handle = FULL_PERMANENT },
  }
  for lp, spec in pairs(builtin_specs(p)) do
    builtin[lp] = parse_spec(spec, "built-in route")
  end
  r = { address = {}, ["local"] = {}, domain = {}, builtin = p.builtins and builtin or {} }
  for _, entry in ipairs(p.routes) do
    local who, spec = entry:match("^%s*([^=]+)=(.+)$")
    if not who then
      error(("router: bad route '%s' (want WHO=SCENARIO[:KEY=VALUE...])"):format(entry), 0)
    end
    who = unescape(who):gsub("%s+$", ""):lower()
    local route = parse_spec(spec, "route", builtin)
    if who:sub(1, 1) == "@" then
      r.domain[who:sub(2)] = route
    elseif who:find("@", 1, true) then
      r.address[who] = route
    else
      r["local"][who] = route
    end
  end
  r.default = parse_spec(p.default, "default", builtin)
  -- Load every scenario now (once per Lua state), so that a bad entry
  -- shows on the first connection, not when some recipient meets it.
  for _, set in ipairs({ r.address, r["local"], r.domain, builtin }) do
    for _, route in pairs(set) do handle(route) end
  end
  handle(r.default)
  tables[p] = r
  return r
end

-- The route for a recipient address (a string or RCPT's table).
local function route_for(address, p)
  local r = routing(p)
  local a = type(address) == "table" and address or emu.addr.parse(address)
    or { address = address, local_part = "", domain = "" }
  local lp, domain = (a.local_part or ""):lower(), (a.domain or ""):lower()
  return r.address[(a.address or ""):lower()] or r["local"][lp] or r.domain[domain]
    or r.builtin[lp] or r.default
end

local function default(p)
  return handle(routing(p).default)
end

-- Note a routed scenario as used by this session (for on_disconnect).
local function used(s, route)
  local u = s.data.router_used
  if not u then u = {}; s.data.router_used = u end
  u[route.spec] = route
end

-- The route that serves the DATA and message stages of this message.
local function message_route(s, p)
  local route = s.tx.router_route
  if not route then
    route = s.rcpts[1] and route_for(s.rcpts[1], p) or routing(p).default
    s.tx.router_route = route
  end
  return route
end

local function to_default(hook)
  return function(s, x, p) return default(p):call(hook, s, x) end
end

local function to_message_route(hook)
  return function(s, x, p)
    local route = message_route(s, p)
    return handle(route):call(hook, s, x)
  end
end

return {
  name = "router",
  description = "Behaviour chosen by the recipient address (greylist@, full@, eof-at-data@, ...), like the SES mailbox simulator",
  params = {
    routes = { default = {}, type = "list",
               help = "WHO=SCENARIO[:KEY=VALUE...] or WHO=BUILTIN@ entries; WHO is a local part, @domain or address" },
    default = { default = "accept",
                help = "SCENARIO[:KEY=VALUE...] (or BUILTIN@) for other recipients and the stages before RCPT" },
    builtins = { default = true, help = "serve the built-in addresses (greylist@, full@, ...)" },
    greylist_delay = { default = 300, type = "number", help = "greylist@: seconds before a retry passes" },
    slow_delay = { default = 5, type = "number", help = "slow@: seconds each reply is late" },
  },
  replies = [[
Each recipient gets what its route's scenario answers at RCPT; DATA and the
end of data follow the first accepted recipient's route. Built-in addresses
(any domain):
  success@         250 2.1.5 Ok (accept)
  greylist@        450 4.2.0 <RCPT>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/DOMAIN.html (until a retry after greylist_delay s)
  reject-5.7.51@   550 5.7.51 TenantInboundAttribution; Rejecting. Recipient has a partner connector ... [HOST TIMESTAMP ID]
  unknown@         550 5.1.1 <RCPT>: Recipient address rejected: User unknown in local recipient table
  relay-denied@    554 5.7.1 <RCPT>: Relay access denied
  spam@            accepted; after the data: 554 5.7.1 Spam message rejected
  eof-at-rcpt@     the connection closes instead of the RCPT reply
  eof-at-data@     accepted; the connection closes instead of the 354
  eof-at-message@  accepted; the connection closes instead of the 250 after the dot
  slow@            RCPT, DATA and end-of-data replies each slow_delay s late
  full@            452-4.2.2 The recipient's inbox is out of storage space. Please direct the
                   452-4.2.2 recipient to
                   452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp ID - gsmtp
  full-permanent@  552-5.2.2 The recipient's inbox is out of storage space and inactive. Please
                   552-5.2.2 direct the recipient to
                   552 5.2.2 https://support.google.com/mail/?p=OverQuotaPerm ID - gsmtp
Other addresses: the `routes` entry that matches, else the `default` scenario.
A route may point at a built-in: --set routes=bob=full@ makes bob@ over quota.]],

  -- Every route is parsed and its scenario loaded with its parameters
  -- when the parameters are set, so a bad entry is refused at start (or
  -- by the API) instead of failing the first session.
  check = function(p)
    local ok, err = pcall(routing, p)
    if not ok then return (tostring(err):gsub("^router: ", "")) end
  end,

  on_connect = to_default("on_connect"),
  on_tls = to_default("on_tls"),
  on_command = to_default("on_command"),
  on_ehlo = to_default("on_ehlo"),
  on_starttls = to_default("on_starttls"),
  on_auth = to_default("on_auth"),
  on_mail = to_default("on_mail"),
  on_quit = to_default("on_quit"),

  on_rcpt = function(s, rcpt, p)
    local route = route_for(rcpt, p)
    used(s, route)
    return handle(route):call("on_rcpt", s, rcpt)
  end,

  on_data = to_message_route("on_data"),
  on_message = to_message_route("on_message"),

  on_disconnect = function(s, x, p)
    default(p):call("on_disconnect", s, x)
    for _, route in pairs(s.data.router_used or {}) do
      if route ~= routing(p).default then handle(route):call("on_disconnect", s, x) end
    end
  end,
}
