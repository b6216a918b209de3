-- scenarios/mimecast.lua
--
-- Mimecast refusing mail. Every Mimecast line ends with a link to its
-- error-code page and a per-message reference in brackets, e.g.
-- "[z7qZw5BPd1zlDYHka4589ru.us222]": 22 characters of base64url, ".", the
-- region and a number (`region`, random number). Sources:
-- ../shared/reference/replies.md (entry), docs/reply-sources.md (section 6).
--
--   failure           stage  reply                                                          source
--   host-network      RCPT   554 Host network not allowed - https://community.mimecast.com/docs/DOC-1369#554 [REF]  1.19
--   poor-reputation   RCPT   550 csi.mimecast.org Poor Reputation Sender. - https://community.mimecast.com/docs/DOC-1369#550 [REF]  reply-sources 6
--   invalid-recipient RCPT   550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 [REF]  reply-sources 6
--   anti-spoofing     EOD    550 Rejected by header based Anti-Spoofing policy: FROM - https://community.mimecast.com/docs/DOC-1369#550 [REF]
--                            (FROM: the From: header's address; sent after the data because the
--                            policy reads the header; the source, a SendGrid event, names no stage)  reply-sources 6
--   security-policy   EOD    554 email rejected due to security policies - MCSpamSignature.sa.2.2  5.22
--
-- The session goes on after each refusal. Left out: "Envelope blocked -
-- User Entry", the spamcop.mimecast.org block and "Internal resource
-- temporarily unavailable" (reply-sources 6 quotes them without a reply
-- code or in a mail client's own format).

local FAILURES = { "host-network", "poor-reputation", "invalid-recipient", "anti-spoofing", "security-policy" }
local B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function ref(s, p)
  local tx = s.tx
  if not tx.mimecast_ref then
    tx.mimecast_ref = ("[%s.%s%d]"):format(emu.random_string(22, B64URL), p.region, emu.random(1, 599))
  end
  return tx.mimecast_ref
end

local function doc(code)
  return " - https://community.mimecast.com/docs/DOC-1369#" .. code
end

return {
  name = "mimecast",
  description = "Mimecast refusals: 554 Host network not allowed, 550 Poor Reputation Sender, Invalid Recipient, Anti-Spoofing, security policies",
  params = {
    failure = { default = "host-network", choices = FAILURES, help = "which refusal (see --describe mimecast)" },
    region = { default = "us", choices = { "us", "uk", "eu", "de", "za", "au", "ca" },
               help = "the region tag in the bracketed reference" },
  },
  replies = [[
host-network (RCPT):      554 Host network not allowed - https://community.mimecast.com/docs/DOC-1369#554 [REF]
poor-reputation (RCPT):   550 csi.mimecast.org Poor Reputation Sender. - https://community.mimecast.com/docs/DOC-1369#550 [REF]
invalid-recipient (RCPT): 550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 [REF]
anti-spoofing (end of data): 550 Rejected by header based Anti-Spoofing policy: FROM - https://community.mimecast.com/docs/DOC-1369#550 [REF]
security-policy (end of data): 554 email rejected due to security policies - MCSpamSignature.sa.2.2
REF looks like z7qZw5BPd1zlDYHka4589ru.us222.]],

  on_rcpt = function(s, rcpt, p)
    local f = p.failure
    if f == "host-network" then
      return emu.reply(554, nil, "Host network not allowed" .. doc(554) .. " " .. ref(s, p))
    elseif f == "poor-reputation" then
      return emu.reply(550, nil, "csi.mimecast.org Poor Reputation Sender." .. doc(550) .. " " .. ref(s, p))
    elseif f == "invalid-recipient" then
      return emu.reply(550, nil, "Invalid Recipient" .. doc(550) .. " " .. ref(s, p))
    end
  end,

  on_message = function(s, m, p)
    if p.failure == "anti-spoofing" then
      local from = m:header("From") or ""
      local a = from:match("<([^>]+)>") or from:match("([^%s<>,;]+@[^%s<>,;]+)") or s.mail_from or ""
      return emu.reply(550, nil, "Rejected by header based Anti-Spoofing policy: " .. a .. doc(550) .. " " .. ref(s, p))
    elseif p.failure == "security-policy" then
      return emu.reply(554, nil, "email rejected due to security policies - MCSpamSignature.sa.2.2")
    end
  end,
}
