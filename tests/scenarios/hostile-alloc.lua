-- Hostile scenario for tests/integration/test_hostile.py: a hook that
-- allocates without end, by doubling a string or by growing a table inside
-- pcall and carrying on after each memory error; the memory cap and the
-- instruction budget must stop it.
-- The EHLO name lists the stages that misbehave ("EHLO mail.rcpt"; the
-- stages are ehlo, tls, starttls, auth, mail, rcpt, data, message, quit
-- and disconnect), and a number at its end picks the first variant
-- ("EHLO mail.3"); a client from 127.0.0.2 makes on_connect misbehave.
local function misbehave(s)
  s.data.n = (s.data.n or 0) + 1
  if s.data.n % 2 == 0 then
    local str = "x"
    while true do str = str .. str end
  end
  local t = {}
  while true do
    pcall(function()
      while true do t[#t + 1] = string.rep("y", 4096) .. #t end
    end)
  end
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
      misbehave(s)
    end
  end
end

return {
  name = "hostile-alloc",
  description = "every hook may allocate without end (test scenario)",
  on_connect = hook("connect"), on_ehlo = hook("ehlo"),
  on_tls = hook("tls"), on_starttls = hook("starttls"), on_auth = hook("auth"),
  on_mail = hook("mail"), on_rcpt = hook("rcpt"), on_data = hook("data"),
  on_message = hook("message"), on_quit = hook("quit"),
  on_disconnect = hook("disconnect"),
}
