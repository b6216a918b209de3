-- scenarios/abrupt-eof.lua
--
-- The connection ends where a reply was due, at any stage: what a client
-- meets when a firewall, a crashed server or a load balancer cuts it off
-- (replies.md 1.25, 1.27, 9: "[EOF]", "Connection unexpectedly closed").
--
--   at = connect    no greeting at all
--        ehlo       instead of the EHLO reply
--        starttls   instead of "220 2.0.0 Ready to start TLS"
--        handshake  after the 220 Ready: the client's TLS ClientHello is
--                   met with a close (or RST, or silence)
--        auth       instead of the AUTH result
--        mail, rcpt instead of their 250
--        data       instead of the 354
--        body       after `after_bytes` bytes of the message
--        message    after the final dot, instead of the 250 (not stored)
--        quit       instead of the 221
--   mode = close (FIN), reset (RST), or hang (stop answering, keep the
--          socket open until the client leaves or hang_timeout seconds)
local function stop(p)
  if p.mode == "reset" then return emu.reset() end
  if p.mode == "hang" then return emu.hang(p.hang_timeout) end
  return emu.drop()
end

-- A hook that ends the connection when `at` names its stage.
local function at(stage)
  return function(s, _, p)
    if p.at == stage then return stop(p) end
  end
end

return {
  name = "abrupt-eof",
  description = "End the connection (FIN, RST or silence) instead of the reply at a chosen stage",
  params = {
    at = { default = "connect",
           choices = { "connect", "ehlo", "starttls", "handshake", "auth", "mail",
                       "rcpt", "data", "body", "message", "quit" },
           help = "the stage whose reply is replaced by the end of the connection" },
    mode = { default = "close", choices = { "close", "reset", "hang" },
             help = "close: FIN; reset: RST; hang: stop answering" },
    after_bytes = { default = 1024, type = "integer",
                    help = "at=body: bytes of the message read before the cut" },
    hang_timeout = { default = 600, type = "number",
                     help = "mode=hang: seconds before the server closes" },
  },
  replies = [[
No reply at the chosen stage: the client sees the connection closed
(FIN), reset (RST), or no answer at all (hang) where it expected the reply.
Messages cut off before their 250 are not stored.]],

  on_connect = at("connect"),
  on_ehlo = at("ehlo"),
  on_auth = at("auth"),
  on_mail = at("mail"),
  on_rcpt = at("rcpt"),
  on_message = at("message"),
  on_quit = at("quit"),

  on_data = function(s, _, p)
    if p.at == "data" then return stop(p) end
    if p.at == "body" then
      local mode = p.mode == "reset" and "reset" or p.mode == "hang" and "hang" or "close"
      local d = emu.cut(p.after_bytes, mode)
      d.hang = p.hang_timeout
      return d
    end
  end,

  on_command = function(s, cmd, p)
    if cmd.verb ~= "STARTTLS" then return nil end
    if p.at == "starttls" then return stop(p) end
    if p.at == "handshake" then
      local r = emu.reply(220, "2.0.0", "Ready to start TLS")
      if p.mode == "reset" then return r:reset_on_input() end
      if p.mode == "hang" then return r:hang(p.hang_timeout) end
      return r:close_on_input()
    end
  end,
}
