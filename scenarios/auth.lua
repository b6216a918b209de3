-- scenarios/auth.lua
--
-- Mail submission (port 587): who may log in (users and passwords, OAuth
-- tokens), which mechanisms are offered, whether AUTH needs TLS first,
-- whether mail without AUTH is refused, and each provider's way of saying
-- no. Replies from ../shared/reference/replies.md (entry) and
-- docs/reply-sources.md (section), by `provider`:
--
--                      postfix (default)            exchange                      gmail                           opensmtpd
--   wrong credentials  535 5.7.8 Error: authentication  535 5.7.3 Authentication    535-5.7.8 Username and Password  535 Authentication failed
--   (AUTH)             failed: authentication failure   unsuccessful (3.4)           not accepted. ... (2 lines,      (3.21)
--                      (3.13)                                                        reply-sources 2a, 3.6)
--   XOAUTH2 with an    as above                     as above                      334 eyJzdGF0dXMiOiI0MDAi... then  as above
--   unknown token                                                                 the 535-5.7.8 (reply-sources 3)
--   MAIL/RCPT without  RCPT: 554 5.7.1 <RCPT>:      MAIL: 530 5.7.57 Client not   MAIL: 530 5.5.1 Authentication   MAIL: 530 5.5.1 Invalid command:
--   AUTH (require_auth) Recipient address rejected: authenticated to send mail.  Required. For more information,  Must issue an AUTH command first
--                      Access denied (1.6 format,   (3.1)                         visit https://support.google.com/ (3.22)
--                      reply-sources 10f)                                         accounts/troubleshooter/2402620 (3.9)
--   AUTH before TLS    504 5.5.4 Encryption required 451 5.7.3 Require STARTTLS   530 5.7.0 Must issue a STARTTLS  (none verified)
--   (tls_required)     for requested authentication  to authenticate            command first. ... (2.2)
--                      mechanism (3.16)              (reply-sources 5a)
--   backend down       454 4.7.0 Temporary           (none verified)              454 4.7.0 Cannot authenticate    (none verified)
--   (temp_failure)     authentication failure:                                    due to a temporary system
--                      Connection lost to                                         problem. Try again later. ...
--                      authentication server (3.14, reply-sources 10d)            (3.11)
--
-- Gmail's one-line texts (2.2, 3.9, 3.11) end with the session id and
-- "- gsmtp" like every Gmail reply (lua/gmail.lua); its ids here have the
-- submission form ("sm"). A combination marked "none verified" is refused
-- by check(p) when the parameters are set (exit status 2 at start, 400
-- from the API) rather than answered with a made-up line.
--
-- EHLO offers `mechanisms` in Postfix's keyword order (PIPELINING, SIZE,
-- STARTTLS, AUTH, ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING;
-- replies.md 8.2); with tls_required, AUTH is offered only after STARTTLS
-- (Postfix smtpd_tls_auth_only). Set `size` to the server's
-- --max-message-size and starttls=false with --no-tls: a scenario cannot
-- read them. AUTH with a mechanism not offered is refused like wrong
-- credentials. Success is the server's "235 2.7.0 Authentication successful".
local gmail = emu.lib("gmail")

local PROVIDERS = { "postfix", "exchange", "gmail", "opensmtpd" }
local XOAUTH2_CHALLENGE =
  "334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ=="

local function refusal(s, p)
  local v = p.provider
  if v == "exchange" then
    return emu.reply(535, "5.7.3", "Authentication unsuccessful")
  elseif v == "gmail" then
    return gmail.reply(s, 535, "5.7.8", {
      "Username and Password not accepted. For more information, go to",
      " https://support.google.com/mail/?p=BadCredentials",
    })
  elseif v == "opensmtpd" then
    return emu.reply(535, nil, "Authentication failed")
  end
  return emu.reply(535, "5.7.8", "Error: authentication failed: authentication failure")
end

local function needs_tls(s, p)
  local v = p.provider
  if v == "exchange" then
    return emu.reply(451, "5.7.3", "Require STARTTLS to authenticate")
  elseif v == "gmail" then
    return gmail.reply(s, 530, "5.7.0", {
      "Must issue a STARTTLS command first. For more information, go to About SMTP " ..
      "error messages and review RFC 3207 specifications.",
    })
  end
  return emu.reply(504, "5.5.4", "Encryption required for requested authentication mechanism")
end

local function temporary(s, p)
  if p.provider == "gmail" then
    return gmail.reply(s, 454, "4.7.0", {
      "Cannot authenticate due to a temporary system problem. Try again later. " ..
      "For more information, go to About SMTP error messages.",
    })
  end
  return emu.reply(454, "4.7.0", "Temporary authentication failure: Connection lost to authentication server")
end

local function member(list, v)
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end

local function offered(p, mech)
  for _, m in ipairs(p.mechanisms) do
    if m:upper() == mech then return true end
  end
  return false
end

return {
  name = "auth",
  description = "Mail submission: users/passwords or OAuth tokens, mechanisms, TLS before AUTH, AUTH required; Postfix, Exchange, Gmail or OpenSMTPD wording",
  params = {
    provider = { default = "postfix", choices = PROVIDERS, help = "whose replies" },
    users = { default = { "alice:secret" }, type = "list",
              help = "accepted credentials for PLAIN and LOGIN, as user:password" },
    tokens = { default = {}, type = "list", help = "accepted XOAUTH2 bearer tokens" },
    mechanisms = { default = { "PLAIN", "LOGIN" }, type = "list",
                   help = "mechanisms offered in EHLO (PLAIN, LOGIN, XOAUTH2)" },
    require_auth = { default = true, help = "refuse mail from clients that did not log in" },
    tls_required = { default = false, help = "offer and allow AUTH only after STARTTLS" },
    temp_failure = { default = false, help = "every AUTH fails temporarily (the password backend is down)" },
    size = { default = 10240000, type = "integer", help = "the SIZE offered in EHLO (match --max-message-size)" },
    starttls = { default = true, help = "offer STARTTLS in EHLO before TLS (false with --no-tls)" },
  },
  replies = [[
Wrong credentials (AUTH):
  postfix:   535 5.7.8 Error: authentication failed: authentication failure
  exchange:  535 5.7.3 Authentication unsuccessful
  gmail:     535-5.7.8 Username and Password not accepted. For more information, go to
             535 5.7.8  https://support.google.com/mail/?p=BadCredentials ID - gsmtp
             (AUTH XOAUTH2 with an unknown token: first 334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==)
  opensmtpd: 535 Authentication failed
Mail without AUTH (require_auth):
  postfix (RCPT): 554 5.7.1 <RCPT>: Recipient address rejected: Access denied
  exchange (MAIL): 530 5.7.57 Client not authenticated to send mail.
  gmail (MAIL): 530 5.5.1 Authentication Required. For more information, visit https://support.google.com/accounts/troubleshooter/2402620 ID - gsmtp
  opensmtpd (MAIL): 530 5.5.1 Invalid command: Must issue an AUTH command first
AUTH before STARTTLS (tls_required):
  postfix:  504 5.5.4 Encryption required for requested authentication mechanism
  exchange: 451 5.7.3 Require STARTTLS to authenticate
  gmail:    530 5.7.0 Must issue a STARTTLS command first. For more information, go to About SMTP error messages and review RFC 3207 specifications. ID - gsmtp
Backend down (temp_failure):
  postfix: 454 4.7.0 Temporary authentication failure: Connection lost to authentication server
  gmail:   454 4.7.0 Cannot authenticate due to a temporary system problem. Try again later. For more information, go to About SMTP error messages. ID - gsmtp]],

  -- Combinations with no verified reply line are refused up front (exit
  -- status 2 at start, 400 from the API) rather than invented.
  check = function(p)
    if p.provider == "opensmtpd" and p.tls_required then
      return "no verified OpenSMTPD reply for AUTH before TLS (tls_required)"
    end
    if p.temp_failure and (p.provider == "exchange" or p.provider == "opensmtpd") then
      return "no verified " .. p.provider .. " reply for a temporary AUTH failure (temp_failure)"
    end
  end,

  on_connect = function(s, c, p)
    if p.provider == "gmail" then gmail.submission(s) end
  end,

  on_ehlo = function(s, helo, p)
    local kw = { "PIPELINING", "SIZE " .. p.size }
    if p.starttls and not s.tls then kw[#kw + 1] = "STARTTLS" end
    if #p.mechanisms > 0 and (s.tls or not p.tls_required) then
      local m = {}
      for i, x in ipairs(p.mechanisms) do m[i] = x:upper() end
      kw[#kw + 1] = "AUTH " .. table.concat(m, " ")
    end
    for _, k in ipairs({ "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING" }) do
      kw[#kw + 1] = k
    end
    s:ehlo_keywords(kw)
  end,

  on_command = function(s, c, p)
    if c.verb == "AUTH" and p.tls_required and not s.tls and s.helo and not s.authenticated then
      return needs_tls(s, p)
    end
  end,

  on_auth = function(s, a, p)
    if p.temp_failure then return temporary(s, p) end
    local mech = (a.mechanism or ""):upper()
    if not offered(p, mech) then return refusal(s, p) end
    if mech == "XOAUTH2" then
      if a.step == 1 and member(p.tokens, a.token or "") then return nil end
      if p.provider == "gmail" and a.step == 1 then return emu.reply(XOAUTH2_CHALLENGE) end
      return refusal(s, p)
    end
    if member(p.users, (a.user or "") .. ":" .. (a.password or "")) then return nil end
    return refusal(s, p)
  end,

  on_mail = function(s, mail, p)
    if not p.require_auth or s.authenticated then return nil end
    local v = p.provider
    if v == "exchange" then
      return emu.reply(530, "5.7.57", "Client not authenticated to send mail.")
    elseif v == "gmail" then
      return gmail.reply(s, 530, "5.5.1", {
        "Authentication Required. For more information, visit " ..
        "https://support.google.com/accounts/troubleshooter/2402620",
      })
    elseif v == "opensmtpd" then
      return emu.reply(530, "5.5.1", "Invalid command: Must issue an AUTH command first")
    end
  end,

  on_rcpt = function(s, rcpt, p)
    if p.provider == "postfix" and p.require_auth and not s.authenticated then
      return emu.reply(554, "5.7.1", ("<%s>: Recipient address rejected: Access denied"):format(rcpt.address))
    end
  end,
}
