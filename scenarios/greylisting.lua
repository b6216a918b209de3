-- scenarios/greylisting.lua
--
-- Greylisting as postgrey does it (replies.md 4.1, 4.2): the first
-- attempt of each triplet (client network, sender, recipient) is deferred
-- at RCPT; a retry after `delay` seconds passes, and the triplet then stays
-- whitelisted for `max_age` days. The client network is the /24 (IPv4) or
-- /64 (IPv6) of the client address, postgrey's default lookup-by-subnet;
-- sender and recipient compare case-insensitively (postgrey's key is lc).
-- A first attempt older than two days without a retry starts over
-- (postgrey's retry window).
--
-- Replies:
--   style=postgrey (default, Postfix + postgrey, replies.md 4.1):
--     450 4.2.0 <RCPT>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/DOMAIN.html
--   style=milter-greylist (replies.md 4.4):
--     451 4.7.1 Greylisting in action, please come back later
--
-- State lives in emu.state (shared by every session and worker, kept
-- across connections and scenario reloads); time is emu.now(), so the
-- control API can move the clock instead of a test waiting minutes.
local RETRY_WINDOW = 2 * 24 * 3600

return {
  name = "greylisting",
  description = "Defer the first attempt of each (client /24, sender, recipient) triplet, like postgrey",
  params = {
    delay = { default = 300, type = "number", help = "seconds before a retry passes" },
    max_age = { default = 35, type = "number", help = "days a passed triplet stays whitelisted" },
    style = { default = "postgrey", choices = { "postgrey", "milter-greylist" },
              help = "whose wording the deferral uses" },
  },
  replies = [[
First attempt of a triplet, and retries before `delay` seconds:
  postgrey:        450 4.2.0 <rcpt@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html
  milter-greylist: 451 4.7.1 Greylisting in action, please come back later
After the delay: the usual 250 2.1.5 Ok; the triplet then passes for max_age days.]],

  on_rcpt = function(s, rcpt, p)
    local net = emu.net.prefix(s.client_ip, 24, 64)
    local key = table.concat({ "triplet", net, (s.mail_from or ""):lower(), rcpt.address:lower() }, "/")
    local now = emu.now()
    local passed = emu.state.get(key .. "/passed")
    if passed then return nil end
    local first = emu.state.get(key)
    if first == nil or now - first > RETRY_WINDOW then
      emu.state.set(key, now, RETRY_WINDOW)
      first = now
    end
    if now - first >= p.delay then
      emu.state.set(key .. "/passed", now, p.max_age * 86400)
      emu.state.del(key)
      s:log(("greylisting: pass after %d s"):format(math.floor(now - first)))
      return nil
    end
    if p.style == "milter-greylist" then
      return emu.reply(451, "4.7.1", "Greylisting in action, please come back later")
    end
    return emu.reply(450, "4.2.0", ("<%s>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/%s.html")
      :format(rcpt.address, rcpt.domain))
  end,
}
