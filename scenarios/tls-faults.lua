-- scenarios/tls-faults.lua
--
-- Everything that can go wrong with TLS on the receiving side, one fault
-- per run (`fault`), for STARTTLS and for implicit-TLS listeners
-- (--listen-tls: the TLS set-up is chosen before the handshake there too):
--
--   no-starttls          EHLO does not offer STARTTLS, and the command is
--                        refused: Postfix without TLS answers
--                        502 5.5.1 Error: command not implemented (replies.md 2.7,
--                        8.19); style=exim: 503 STARTTLS command used when not
--                        advertised (2.8). Session kept.
--   unavailable          STARTTLS is offered but refused:
--                        454 4.7.0 TLS not available due to local problem (2.4,
--                        Postfix when its certificate cannot be loaded);
--                        style=exim: 454 TLS currently unavailable (2.5). Kept.
--   alert                the handshake fails: the server answers the
--                        ClientHello with a handshake_failure alert and
--                        closes (Postfix just disconnects on a failed
--                        handshake, 2.10)
--   close-mid-handshake  STARTTLS gets 220 2.0.0 Ready to start TLS (2.6), then the
--                        connection closes as soon as the client starts the
--                        handshake. On an implicit-TLS listener the
--                        connection closes at once, before the handshake.
--   old-tls              only TLS 1.0 and 1.1: a client that insists on 1.2
--                        or later (Python's default, OpenSSL 3 defaults)
--                        fails the handshake
--   tls13-only           only TLS 1.3: a client limited to 1.2 fails
--   expired              an expired server certificate (certs/server-expired.pem)
--   selfsigned           a self-signed one (certs/server-selfsigned.pem)
--   wronghost            one for wrong.example.net (certs/server-wronghost.pem)
--                        -- the last three complete the handshake with a client
--                        that does not verify, and fail it for one that does.
--
-- The STARTTLS replies are Postfix's (or Exim's) own lines cited above;
-- no other reply is changed. On an implicit-TLS listener no-starttls and
-- unavailable change nothing (the session is already encrypted).
local ALT_CERT = { expired = true, selfsigned = true, wronghost = true }

return {
  name = "tls-faults",
  description = "TLS failures: STARTTLS not offered or refused (454), handshake alert or cut, old or 1.3-only TLS, bad certificates",
  params = {
    fault = { default = "no-starttls",
              choices = { "no-starttls", "unavailable", "alert", "close-mid-handshake", "old-tls",
                          "tls13-only", "expired", "selfsigned", "wronghost" },
              help = "what goes wrong" },
    style = { default = "postfix", choices = { "postfix", "exim" },
              help = "no-starttls and unavailable: Postfix's or Exim's reply to STARTTLS" },
    size = { default = 10240000, type = "integer",
             help = "no-starttls: the SIZE the EHLO reply offers (match --max-message-size)" },
  },
  replies = [[
no-starttls: EHLO offers PIPELINING, SIZE, AUTH PLAIN LOGIN XOAUTH2,
  ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING (no STARTTLS); STARTTLS gets
    502 5.5.1 Error: command not implemented     (style=exim: 503 STARTTLS command used when not advertised)
unavailable: STARTTLS gets
    454 4.7.0 TLS not available due to local problem     (style=exim: 454 TLS currently unavailable)
alert: the handshake gets a handshake_failure alert, then the connection closes
close-mid-handshake: 220 2.0.0 Ready to start TLS, then the connection closes when
  the client sends its ClientHello (implicit TLS: closed before the handshake)
old-tls: TLS 1.0-1.1 only; tls13-only: TLS 1.3 only
expired / selfsigned / wronghost: that server certificate (fails verification)]],

  on_connect = function(s, _, p)
    if p.fault == "no-starttls" then
      s:ehlo_keywords({ "PIPELINING", "SIZE " .. p.size, "AUTH PLAIN LOGIN XOAUTH2",
                        "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING" })
    end
    return nil
  end,

  on_command = function(s, cmd, p)
    if cmd.verb ~= "STARTTLS" or s.tls then return nil end
    if p.fault == "no-starttls" then
      if p.style == "exim" then return emu.reply("503 STARTTLS command used when not advertised") end
      return emu.reply(502, "5.5.1", "Error: command not implemented")
    elseif p.fault == "unavailable" then
      if p.style == "exim" then return emu.reply("454 TLS currently unavailable") end
      return emu.reply(454, "4.7.0", "TLS not available due to local problem")
    elseif p.fault == "close-mid-handshake" then
      return emu.reply(220, "2.0.0", "Ready to start TLS"):close_on_input()
    end
    return nil
  end,

  on_tls = function(s, _, p)
    local f = p.fault
    if f == "alert" then return emu.tls{ cert = "alert" } end
    if f == "old-tls" then return emu.tls{ versions = "1.0-1.1" } end
    if f == "tls13-only" then return emu.tls{ versions = "1.3" } end
    if ALT_CERT[f] then return emu.tls{ cert = f } end
    if f == "close-mid-handshake" then return emu.drop() end -- implicit TLS only
    return nil
  end,
}
