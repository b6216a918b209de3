-- scenarios/barracuda.lua
--
-- Barracuda (the Email Security Service and the on-premises appliance)
-- refusing mail. Sources: ../shared/reference/replies.md (entry),
-- docs/reply-sources.md (section 6).
--
--   failure      stage  reply                                                              source
--   reputation   RCPT   554 Service unavailable; Client host [IP] blocked using Barracuda Reputation;
--                       http://www.barracudanetworks.com/reputation/?r=1&ip=IP              reply-sources 6
--                       (appliance; the source redacted the address, shown here as the client's)
--   recipients   EOD    550 permanent failure for one or more recipients (RCPT:blocked)     reply-sources 6
--                       (Email Security Service; RCPT: the message's first recipient)
--   content      EOD    550 5.7.1 Message content rejected, UBE, id=NNNNN-NN-NNN             5.23
--                       (the id is random in the source's shape, 00000-22-225)
--
-- The session goes on after each refusal. No enhanced status codes except
-- in 5.23, as in the sources.

local FAILURES = { "reputation", "recipients", "content" }

return {
  name = "barracuda",
  description = "Barracuda refusals: 554 ... blocked using Barracuda Reputation, 550 permanent failure for one or more recipients, 550 5.7.1 UBE",
  params = {
    failure = { default = "reputation", choices = FAILURES, help = "which refusal (see --describe barracuda)" },
  },
  replies = [[
reputation (RCPT): 554 Service unavailable; Client host [IP] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?r=1&ip=IP
recipients (end of data): 550 permanent failure for one or more recipients (RCPT:blocked)
content (end of data): 550 5.7.1 Message content rejected, UBE, id=00000-22-225 (a random id of that shape)]],

  on_rcpt = function(s, rcpt, p)
    if p.failure == "reputation" then
      return emu.reply(554, nil, ("Service unavailable; Client host [%s] blocked using Barracuda " ..
        "Reputation; http://www.barracudanetworks.com/reputation/?r=1&ip=%s"):format(s.client_ip, s.client_ip))
    end
  end,

  on_message = function(s, m, p)
    if p.failure == "recipients" then
      return emu.reply(550, nil, ("permanent failure for one or more recipients (%s:blocked)")
        :format(m.rcpts[1] or ""))
    elseif p.failure == "content" then
      return emu.reply(550, "5.7.1", ("Message content rejected, UBE, id=%05d-%02d-%d")
        :format(emu.random(0, 99999), emu.random(0, 99), emu.random(1, 999)))
    end
  end,
}
