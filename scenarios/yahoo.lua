-- scenarios/yahoo.lua
--
-- Yahoo Mail (and AOL, same servers) refusing mail, one `failure` at a time.
-- Lines from ../shared/reference/replies.md (entry) and docs/reply-sources.md (section):
--
--   failure       stage    reply                                                          source
--   tss04         MAIL     421 4.7.0 [TSS04] Messages from IP temporarily deferred due to unexpected
--                          volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes
--                          then close                                                     7.9
--                          (era=2020: "... see https://postmaster.verizonmedia.com/error-codes",
--                          reply-sources 7)
--   ts02          connect  421 4.7.0 [TS02] Temporarily deferred, then close               7.10
--   ts03          connect  421 4.7.1 [TS03] All messages from IP permanently deferred, then close  7.10
--   policy        EOD      554 5.7.9 Message not accepted for policy reasons. See https://senders.yahooinc.com/error-codes  5.21
--   user-unknown  EOD      554 delivery error: dd This user doesn't have a yahoo.com account (RCPT) [0] - HOST  6.16
--
-- ts02/ts03 are the older [TS0x] codes: help.yahoo.com names them for the
-- connection or MAIL stage (7.10); here they replace the greeting. The
-- user-unknown line is sent after the data for the first recipient (6.16
-- gives no stage finer than RCPT/EOD; Yahoo accepts the RCPT and refuses
-- after the final dot). Yahoo's replies carry no per-message ID.

local FAILURES = { "tss04", "ts02", "ts03", "policy", "user-unknown" }

return {
  name = "yahoo",
  description = "Yahoo Mail refusals: 421 4.7.0 [TSS04] deferral at MAIL, older [TS0x] at connect, 554 5.7.9 policy, unknown user",
  params = {
    failure = { default = "tss04", choices = FAILURES, help = "which refusal (see --describe yahoo)" },
    era = { default = "current", choices = { "current", "2020" },
            help = "tss04: the current URL (postmaster.yahooinc.com) or the 2020-2022 one (verizonmedia)" },
    yahoo_host = { default = "mta1061.mail.ne1.yahoo.com",
                   help = "user-unknown: the Yahoo server named at the end of the line" },
  },
  replies = [[
tss04 (MAIL, then close):
  421 4.7.0 [TSS04] Messages from IP temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes
ts02 (instead of the greeting, then close):  421 4.7.0 [TS02] Temporarily deferred
ts03 (instead of the greeting, then close):  421 4.7.1 [TS03] All messages from IP permanently deferred
policy (end of data):  554 5.7.9 Message not accepted for policy reasons. See https://senders.yahooinc.com/error-codes
user-unknown (end of data):  554 delivery error: dd This user doesn't have a yahoo.com account (RCPT) [0] - mta1061.mail.ne1.yahoo.com]],

  on_connect = function(s, c, p)
    if p.failure == "ts02" then
      return emu.reply(421, "4.7.0", "[TS02] Temporarily deferred")
    elseif p.failure == "ts03" then
      return emu.reply(421, "4.7.1", ("[TS03] All messages from %s permanently deferred"):format(s.client_ip))
    end
  end,

  on_mail = function(s, mail, p)
    if p.failure == "tss04" then
      local url = p.era == "2020" and "https://postmaster.verizonmedia.com/error-codes"
        or "https://postmaster.yahooinc.com/error-codes"
      return emu.reply(421, "4.7.0", ("[TSS04] Messages from %s temporarily deferred due to " ..
        "unexpected volume or user complaints - 4.16.55.1; see %s"):format(s.client_ip, url))
    end
  end,

  on_message = function(s, m, p)
    if p.failure == "policy" then
      return emu.reply(554, "5.7.9", "Message not accepted for policy reasons. See " ..
        "https://senders.yahooinc.com/error-codes")
    elseif p.failure == "user-unknown" then
      return emu.reply(554, nil, ("delivery error: dd This user doesn't have a yahoo.com " ..
        "account (%s) [0] - %s"):format(m.rcpts[1] or "", p.yahoo_host))
    end
  end,
}
