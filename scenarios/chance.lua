-- scenarios/chance.lua
--
-- State and chance, at one stage of the session (`stage`):
--
-- 1. Fail the first N attempts, then accept (`fail_first` = N). An attempt
--    is one arrival at `stage` for a key (`per`):
--      per=triplet  the client's network (its /24, or /64 for IPv6, as
--                   postgrey groups clients), plus the sender from MAIL
--                   on, plus the recipient at RCPT (at DATA and after the
--                   dot: all accepted recipients of the message) -- only
--                   the parts known at `stage`
--      per=client   the client address alone
--    The first N attempts of a key get `reply`; attempt N+1 and later
--    pass. `memory` seconds after a key's first attempt its count starts
--    over (a fixed window on the scenario clock, so the control API can
--    end it at once).
--
-- 2. Random faults, independent of the above: at each arrival at `stage`
--    one draw picks the fate -- with probability p_drop the connection is
--    closed without a reply, with p_reply the client gets `reply`, else
--    the stage goes on as usual -- and a second draw delays whatever
--    happens by `delay` seconds with probability p_delay (like MailHog's
--    chaos monkey). The draws come from emu.random, so a run started with
--    --seed N makes the same choices for the same sequence of commands:
--    a failing CI run replays exactly with its seed. (Each arrival at
--    `stage` takes exactly two draws whatever the probabilities, so
--    changing one probability does not shift the others' sequence.)
--
-- `reply` is the user's own line ("451 4.3.0 Error: try again" works):
-- CODE [ESC] TEXT, 400-599. Its default is Exim's reply to a deferring
-- ACL without a message, the generic "try again later" at RCPT
-- (../shared/reference/replies.md 4.5):
--     451 Temporary local problem - please try later
-- A 421 closes the connection after the reply (as Postfix does); any
-- other reply keeps it. At stage=connect the reply replaces the greeting.
-- x: MAIL's or RCPT's table at those stages.
local function key_of(s, stage, x, p)
  if p.per == "client" then return "client/" .. s.client_ip end
  local parts = { "triplet", emu.net.prefix(s.client_ip, 24, 64) }
  if stage == "mail" then
    parts[#parts + 1] = x.address:lower()
  elseif stage == "rcpt" or stage == "data" or stage == "message" then
    parts[#parts + 1] = (s.mail_from or ""):lower()
  end
  if stage == "rcpt" then
    parts[#parts + 1] = x.address:lower()
  elseif stage == "data" or stage == "message" then
    local r = {}
    for i, a in ipairs(s.rcpts) do r[i] = a:lower() end
    table.sort(r)
    parts[#parts + 1] = table.concat(r, ",")
  end
  return table.concat(parts, "/")
end

local function reply(p)
  return emu.reply(p.reply)
end

-- The decision at `stage`, or nil.
local function decide(s, stage, x, p)
  if stage ~= p.stage then return nil end
  local d
  if p.fail_first > 0 then
    local key = key_of(s, stage, x, p)
    local n = emu.state.incr(key, 1, p.memory)
    if n <= p.fail_first then
      s:log(("chance: attempt %d of %d fails (%s)"):format(math.floor(n), p.fail_first, key))
      d = reply(p)
    end
  end
  local fate, slow = emu.random(), emu.random()
  if d == nil then
    if fate < p.p_drop then
      s:log(("chance: drop at %s (%.4f)"):format(stage, fate))
      d = emu.drop()
    elseif fate < p.p_drop + p.p_reply then
      s:log(("chance: reply at %s (%.4f)"):format(stage, fate))
      d = reply(p)
    end
  end
  if slow < p.p_delay and p.delay > 0 then
    s:log(("chance: delay %g s at %s (%.4f)"):format(p.delay, stage, slow))
    d = d and d:after(p.delay) or emu.delay(p.delay)
  end
  return d
end

local function probability(help)
  return { default = 0, type = "number", help = help }
end

return {
  name = "chance",
  description = "Fail the first N attempts per triplet or client, and seeded random replies, drops and delays at a stage",
  params = {
    stage = { default = "rcpt", choices = { "connect", "ehlo", "mail", "rcpt", "data", "message" },
              help = "where attempts are counted and faults happen" },
    fail_first = { default = 0, type = "integer", help = "the first N attempts of each key get `reply`" },
    per = { default = "triplet", choices = { "triplet", "client" },
            help = "fail_first key: client network + sender + recipient(s), or the client address" },
    memory = { default = 3600, type = "number",
               help = "seconds after a key's first attempt until its count starts over" },
    reply = { default = "451 Temporary local problem - please try later",
              help = "the refusal: CODE [ESC] TEXT (your own line is fine)" },
    p_reply = probability("chance of `reply` at each arrival at the stage"),
    p_drop = probability("chance of closing the connection without a reply"),
    p_delay = probability("chance of waiting `delay` seconds first"),
    delay = { default = 5, type = "number", help = "seconds of a random delay" },
  },
  replies = [[
fail_first=N: the first N attempts of each key, then random faults with p_reply:
  451 Temporary local problem - please try later      (the `reply` parameter)
p_drop: the connection is closed instead of the reply (FIN, no bytes).
p_delay: the reply (whatever it is) comes `delay` seconds late.
Everything else: the server's usual replies.]],

  on_connect = function(s, x, p) return decide(s, "connect", x, p) end,
  on_ehlo = function(s, x, p) return decide(s, "ehlo", x, p) end,
  on_mail = function(s, x, p) return decide(s, "mail", x, p) end,
  on_rcpt = function(s, x, p) return decide(s, "rcpt", x, p) end,
  on_data = function(s, x, p) return decide(s, "data", x, p) end,
  on_message = function(s, x, p) return decide(s, "message", x, p) end,
}
