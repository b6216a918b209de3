-- scenarios/tarpit.lua
--
-- A slow server, for testing a client's timeouts: every reply is the
-- server's usual one, only late. Two kinds of slowness, which add up:
--
--   a delay per stage  (greeting, ehlo, auth, mail, rcpt, data, message,
--                       quit; `other` for RSET, NOOP, VRFY, HELP and
--                       STARTTLS): the whole reply comes that many seconds
--                       after the command (emu.delay)
--   line_delay         every line of a reply is sent line_delay seconds
--                      after the one before it (the first one too), so
--                      the ten-line EHLO reply takes ten times as long and
--                      a client that waits for the whole reply with one
--                      short timeout gives up in the middle (emu.slowly)
--
-- While a reply is late the server reads nothing more from that client;
-- other sessions are not held up (timers, not sleeps). Pick values around
-- the client's own timeouts: RFC 5321 4.5.3.2 suggests 5 minutes for the
-- greeting, MAIL and RCPT, 2 for the DATA command and 10 for the end of
-- the data.
--
-- Replies: only the server's defaults, Postfix's wording
-- (../shared/reference/replies.md 8.1 greeting, 8.2 EHLO, 8.4 MAIL/RCPT/
-- DATA/end of data, 8.5 QUIT, 8.6 RSET/NOOP/VRFY, 2.6 STARTTLS,
-- 3.15 AUTH). Real servers tarpit the same way: Postfix delays each reply
-- by smtpd_error_sleep_time once a client passes smtpd_soft_error_limit
-- (replies.md 7.2), OpenSMTPD sends its 535 after a delay (3.21).
local OTHER = { RSET = true, NOOP = true, VRFY = true, HELP = true, STARTTLS = true }

-- The decision for a stage: its delay, and the line delay.
local function slow(seconds, p)
  if seconds <= 0 and p.line_delay <= 0 then return nil end
  local d = emu.slowly(p.line_delay)
  if seconds > 0 then d = d:after(seconds) end
  return d
end

local function stage(name)
  return function(s, _, p) return slow(p[name], p) end
end

local function seconds(help)
  return { default = 0, type = "number", help = help }
end

return {
  name = "tarpit",
  description = "Slow replies: a delay per stage and/or per line of each reply, for testing client timeouts",
  params = {
    greeting = seconds("seconds before the 220 greeting"),
    ehlo = seconds("seconds before the EHLO/HELO reply"),
    auth = seconds("seconds before the AUTH result"),
    mail = seconds("seconds before the MAIL reply"),
    rcpt = seconds("seconds before each RCPT reply"),
    data = seconds("seconds before the 354 (DATA) or the BDAT reply"),
    message = seconds("seconds before the reply after the final dot"),
    quit = seconds("seconds before the 221"),
    other = seconds("seconds before the reply to RSET, NOOP, VRFY, HELP and STARTTLS"),
    line_delay = seconds("seconds before each line of every reply to the stages above"),
  },
  replies = [[
The usual replies (220 HOST ESMTP smtp-emulator, the EHLO list, 250 2.1.0 Ok,
250 2.1.5 Ok, 354 End data with <CR><LF>.<CR><LF>, 250 2.0.0 Ok: queued as
ID, 221 2.0.0 Bye, ...), each one late: `greeting` ... `quit` seconds for the
whole reply, plus `line_delay` seconds before each of its lines. With
--set line_delay=2 the EHLO reply (10 lines) takes 20 seconds to arrive.
RSET, NOOP, VRFY, HELP and STARTTLS wait `other` seconds, plus
`line_delay` before each line.]],

  on_connect = stage("greeting"),
  on_ehlo = stage("ehlo"),
  on_auth = stage("auth"),
  on_mail = stage("mail"),
  on_rcpt = stage("rcpt"),
  on_data = stage("data"),
  on_message = stage("message"),
  on_quit = stage("quit"),

  on_command = function(s, cmd, p)
    if not OTHER[cmd.verb] then return nil end
    return slow(p.other, p)
  end,
}
