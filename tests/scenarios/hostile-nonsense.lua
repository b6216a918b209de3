-- Hostile scenario for tests/integration/test_hostile.py: a hook that
-- returns something that is not a decision, or a decision no server could
-- carry out. Each call returns the next value of the list.
-- The EHLO name lists the stages that misbehave ("EHLO mail.rcpt"; the
-- stages are ehlo, tls, starttls, auth, mail, rcpt, data, message, quit
-- and disconnect), and a number at its end picks the first variant
-- ("EHLO mail.3"); a client from 127.0.0.2 makes on_connect misbehave.
local decision_mt = getmetatable(emu.reply("250 2.0.0 Ok"))

local function raw(t) return setmetatable(t, decision_mt) end

local nonsense = {
  function() return 42 end,
  function() return true end,
  function() return {} end,
  function() return { kind = "reply", text = "250 2.0.0 Ok" } end,
  function() return print end,
  function() return "not a reply" end,
  function() return "999 out of range" end,
  function() return raw({ kind = "explode" }) end,
  function() return raw({ kind = "reply" }) end,
  function() return raw({ kind = "reply", text = "250 ok\r\nRSET" }) end,
  function() return raw({ kind = "reply", text = "250-a\n550 b" }) end,
  function() return raw({ kind = "reply", text = {} }) end,
  function() return raw({ kind = "default", delay = -1 }) end,
  function() return raw({ kind = "default", delay = 0 / 0 }) end,
  function() return raw({ kind = "hang", hang = 1e300 }) end,
  function() return raw({ kind = "default", cut = -5 }) end,
  function() return raw({ kind = "default", next = "sideways" }) end,
  function()
    return setmetatable({}, {
      __index = function() error("a field read that raises") end,
      __metatable = decision_mt,
    })
  end,
  -- An empty text is no reply either (it was once taken for the default:
  -- finding S1 of tests/fuzz/RESULTS.md).
  function() return raw({ kind = "reply", text = "" }) end,
}

local function misbehave(s)
  s.data.n = (s.data.n or 0) + 1
  return nonsense[(s.data.n - 1) % #nonsense + 1]()
end

local function hook(stage)
  return function(s, arg)
    if stage == "ehlo" then
      -- "EHLO mail.7": misbehave at MAIL, starting with variant 7.
      s.data.at = arg
      s.data.n = tonumber(arg:match("(%d+)$")) or s.data.n
    end
    if stage == "connect" and arg.ip ~= "127.0.0.2" then return nil end
    if stage == "connect" or (s.data.at or ""):find(stage, 1, true) then
      return misbehave(s)
    end
  end
end

return {
  name = "hostile-nonsense",
  description = "every hook may return nonsense (test scenario)",
  on_connect = hook("connect"), on_ehlo = hook("ehlo"),
  on_tls = hook("tls"), on_starttls = hook("starttls"), on_auth = hook("auth"),
  on_mail = hook("mail"), on_rcpt = hook("rcpt"), on_data = hook("data"),
  on_message = hook("message"), on_quit = hook("quit"),
  on_disconnect = hook("disconnect"),
}
