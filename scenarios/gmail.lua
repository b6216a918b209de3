-- scenarios/gmail.lua
--
-- Gmail (gmail-smtp-in.l.google.com, and smtp.gmail.com for the AUTH
-- failures) refusing mail, one `failure` at a time, in Gmail's wire form:
-- each line repeats "CODE-ESC", the last ends "<id> - gsmtp" (lua/gmail.lua),
-- and a line that starts with a URL has two spaces after the enhanced code
-- where the source shows them. Multi-line exactly where the source shows
-- the wire lines; where the source has only the text (Google's help page,
-- SISIMAI-G), one line, ending with the session id as every Gmail reply does.
-- Sources: ../shared/reference/replies.md (entry) and docs/reply-sources.md (section).
--
--   failure             stage  reply (first line)                                               source
--   user-unknown        RCPT   550-5.1.1 The email account that you tried to reach does not exist. ... (4 lines, ?p=NoSuchUser)
--                                                                                              6.1/6.2, reply-sources 10a
--   disabled            RCPT   550-5.2.1 The email account that you tried to reach is disabled. ... (2 lines)  6.3
--   inactive            RCPT   550-5.2.1 The email account that you tried to reach is inactive. ... (3 lines)  6.3
--   over-quota          RCPT   552-5.2.2 The recipient's inbox is out of storage space and inactive. ... (3 lines)  6.4
--   quota-temp          RCPT   452-4.2.2 The recipient's inbox is out of storage space. ... (3 lines)  6.5, reply-sources 4d
--   receiving-rate      RCPT   450-4.2.1 The user you are trying to contact is receiving mail at a rate that ... (6 lines)
--                                                                                              4.6, reply-sources 4b
--   tls-required        RCPT   421 4.7.0 TLS required for RCPT domain, closing connection. ... (one line; without TLS; then close)  2.14
--   ip-not-allowlisted  RCPT   421 4.7.0 IP not in whitelist for RCPT domain, closing connection. ... (one line;
--                              clients outside `allow`; then close)                            1.17, reply-sources 4c
--   auth-required       MAIL   530 5.5.1 Authentication Required. For more information, visit ... (one line; without AUTH)  3.9
--   bad-credentials     AUTH   535-5.7.8 Username and Password not accepted. For more information, go to (2 lines)  3.6, reply-sources 2a
--   app-password        AUTH   534-5.7.9 Application-specific password required. For more information, go to (2 lines)  3.7, reply-sources 2d
--   xoauth2             AUTH   334 eyJzdGF0dXMiOiI0MDAi... (the error challenge), then after the client's
--                              answer the 535-5.7.8 above; other mechanisms get the 535 at once  reply-sources 3
--   too-many-logins     AUTH   454 4.7.0 Too many login attempts, please try again later. <id> - gsmtp  3.10, reply-sources 3
--   dmarc               EOD    550-5.7.26 Unauthenticated email from DOMAIN is not accepted due to domain's ... (5 lines)  5.2
--   spf-fail            EOD    550-5.7.26 The MAIL FROM domain [DOMAIN] has an SPF record with a hard fail ... (6 lines)  5.3
--   unauthenticated     EOD    550 5.7.26 This message does not have authentication information ... (one line)  5.4
--   unsolicited         EOD    550-5.7.1 [IP      12] Gmail has detected that this message is ... (4 lines)  5.1, reply-sources 1a
--   no-ptr              EOD    550-5.7.25 [IP] The IP address sending this message does not have a ... (5 lines)  5.11
--   attachment          EOD    552-5.7.0 This message was blocked because its content presents a potential ... (4 lines)  5.9
--   rate-limited        EOD    421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating ... (6 lines,
--                              IP Netblock variant; then close)                                5.7, reply-sources 4a
--
-- Around the refusals, Gmail's own lines where the sources give them: the
-- greeting "220 HOST ESMTP <id> - gsmtp" and "250 2.1.0 OK <id> - gsmtp" for
-- MAIL (6.1; HOST is --hostname); DATA after every RCPT was refused gets
-- "503-5.5.1 RCPT first. ..." (4 lines, 6.6). Session ids have the modern
-- shape (lua/gmail.lua); the AUTH failures use the submission form ("sm").
-- DOMAIN is the From: header's domain (dmarc) or the MAIL FROM domain (spf-fail).
local gmail = emu.lib("gmail")

local FAILURES = {
  "user-unknown", "disabled", "inactive", "over-quota", "quota-temp", "receiving-rate",
  "tls-required", "ip-not-allowlisted", "auth-required", "bad-credentials", "app-password",
  "xoauth2", "too-many-logins", "dmarc", "spf-fail", "unauthenticated", "unsolicited",
  "no-ptr", "attachment", "rate-limited",
}

local AUTH_FAILURES = {
  ["bad-credentials"] = true, ["app-password"] = true, xoauth2 = true,
  ["too-many-logins"] = true, ["auth-required"] = true,
}

-- {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}
local XOAUTH2_CHALLENGE =
  "334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ=="

local sets = setmetatable({}, { __mode = "k" })
local function allowed(s, p)
  local set = sets[p]
  if not set then set = emu.net.cidrs(p.allow); sets[p] = set end
  return set:contains(s.client_ip)
end

local function bad_credentials(s)
  return gmail.reply(s, 535, "5.7.8", {
    "Username and Password not accepted. For more information, go to",
    " https://support.google.com/mail/?p=BadCredentials",
  })
end

local RCPT = {
  ["user-unknown"] = function(s)
    return gmail.reply(s, 550, "5.1.1", {
      "The email account that you tried to reach does not exist. Please try",
      "double-checking the recipient's email address for typos or",
      "unnecessary spaces. Learn more at",
      " https://support.google.com/mail/?p=NoSuchUser",
    })
  end,
  disabled = function(s)
    return gmail.reply(s, 550, "5.2.1", {
      "The email account that you tried to reach is disabled. Learn more at",
      " https://support.google.com/mail/?p=DisabledUser",
    })
  end,
  inactive = function(s)
    return gmail.reply(s, 550, "5.2.1", {
      "The email account that you tried to reach is inactive. For more",
      "information, go to",
      " https://support.google.com/mail/?p=DisabledUser",
    })
  end,
  ["over-quota"] = function(s)
    -- One space before the URL, as replies.md 6.4 shows it.
    return gmail.reply(s, 552, "5.2.2", {
      "The recipient's inbox is out of storage space and inactive. Please",
      "direct the recipient to",
      "https://support.google.com/mail/?p=OverQuotaPerm",
    })
  end,
  ["quota-temp"] = function(s)
    return gmail.reply(s, 452, "4.2.2", {
      "The recipient's inbox is out of storage space. Please direct the",
      "recipient to",
      " https://support.google.com/mail/?p=OverQuotaTemp",
    })
  end,
  ["receiving-rate"] = function(s)
    return gmail.reply(s, 450, "4.2.1", {
      "The user you are trying to contact is receiving mail at a rate that",
      "prevents additional messages from being delivered. Please resend your",
      "message at a later time. If the user is able to receive mail at that",
      "time, your message will be delivered. For more information, please",
      "visit",
      " https://support.google.com/mail/answer/6592",
    })
  end,
  ["tls-required"] = function(s)
    if s.tls then return nil end
    return gmail.reply(s, 421, "4.7.0", {
      "TLS required for RCPT domain, closing connection. For more information, " ..
      "go to Email encryption in transit. https://support.google.com/mail/answer/6330403",
    })
  end,
  ["ip-not-allowlisted"] = function(s, rcpt, p)
    if allowed(s, p) then return nil end
    return gmail.reply(s, 421, "4.7.0", {
      "IP not in whitelist for RCPT domain, closing connection. For more information, " ..
      "go to Allowlists, denylists, and approved senders.",
    })
  end,
}

local MESSAGE = {
  dmarc = function(s, m)
    local from = m:header("From") or ""
    local d = from:match("@([%w%.%-]+)") or (s.mail_from or ""):match("@([^@]+)$") or ""
    return gmail.reply(s, 550, "5.7.26", {
      ("Unauthenticated email from %s is not accepted due to domain's"):format(d),
      ("DMARC policy. Please contact the administrator of %s domain if"):format(d),
      "this was a legitimate mail. To learn about the DMARC initiative, go",
      "to",
      " https://support.google.com/mail/?p=DmarcRejection",
    })
  end,
  ["spf-fail"] = function(s)
    local d = (s.mail_from or ""):match("@([^@]+)$") or ""
    return gmail.reply(s, 550, "5.7.26", {
      ("The MAIL FROM domain [%s] has an SPF record with a hard fail"):format(d),
      "policy (-all) but it fails to pass SPF checks with the ip:",
      ("[%s]. To best protect our users from spam and phishing,"):format(s.client_ip),
      "the message has been blocked. For instructions on setting up",
      "authentication, go to",
      " https://support.google.com/mail/answer/81126#authentication",
    })
  end,
  unauthenticated = function(s)
    return gmail.reply(s, 550, "5.7.26", {
      "This message does not have authentication information or fails to pass " ..
      "authentication checks (SPF or DKIM). To best protect our users from spam, the " ..
      "message has been blocked. Please visit https://support.google.com/mail/answer/81126 " ..
      "for more information.",
    })
  end,
  unsolicited = function(s)
    return gmail.reply(s, 550, "5.7.1", {
      ("[%s      12] Gmail has detected that this message is"):format(s.client_ip),
      "likely unsolicited mail. To reduce the amount of spam sent to Gmail,",
      "this message has been blocked. For more information, go to",
      " https://support.google.com/mail/?p=UnsolicitedMessageError",
    })
  end,
  ["no-ptr"] = function(s)
    return gmail.reply(s, 550, "5.7.25", {
      ("[%s] The IP address sending this message does not have a"):format(s.client_ip),
      "PTR record setup, or the corresponding forward DNS entry does not",
      "point to the sending IP. As a policy, Gmail does not accept messages",
      "from IPs with missing PTR records. For more information, go to",
      "https://support.google.com/mail/answer/81126#ip-practices",
    })
  end,
  attachment = function(s)
    return gmail.reply(s, 552, "5.7.0", {
      "This message was blocked because its content presents a potential",
      "security issue. Please visit",
      " https://support.google.com/mail/answer/6590 to review our message",
      "content and attachment content guidelines.",
    })
  end,
  ["rate-limited"] = function(s)
    return gmail.reply(s, 421, "4.7.28", {
      "Gmail has detected an unusual rate of unsolicited mail originating",
      ("from your IP Netblock [%s      34]. To protect our users"):format(s.client_ip),
      "from spam, mail sent from your IP Netblock has been temporarily rate",
      "limited. For more information, go to",
      " https://support.google.com/mail/?p=UnsolicitedRateLimitError to",
      "review our Bulk Email Senders Guidelines.",
    })
  end,
}

return {
  name = "gmail",
  description = "Gmail refusals in Gmail's wire form (550-5.1.1, 550-5.7.26, 550-5.7.1, 421-4.7.28, 535-5.7.8, XOAUTH2, ...) by `failure`",
  params = {
    failure = { default = "user-unknown", choices = FAILURES,
                help = "which refusal (see --describe gmail)" },
    allow = { default = { "192.0.2.0/24" }, type = "cidrs",
              help = "ip-not-allowlisted: client addresses on the domain's allow-list" },
  },
  replies = [[
Greeting: 220 HOST ESMTP ID - gsmtp; MAIL: 250 2.1.0 OK ID - gsmtp. By failure:
  user-unknown (RCPT):
    550-5.1.1 The email account that you tried to reach does not exist. Please try
    550-5.1.1 double-checking the recipient's email address for typos or
    550-5.1.1 unnecessary spaces. Learn more at
    550 5.1.1  https://support.google.com/mail/?p=NoSuchUser ID - gsmtp
  disabled (RCPT):
    550-5.2.1 The email account that you tried to reach is disabled. Learn more at
    550 5.2.1  https://support.google.com/mail/?p=DisabledUser ID - gsmtp
  inactive (RCPT):
    550-5.2.1 The email account that you tried to reach is inactive. For more
    550-5.2.1 information, go to
    550 5.2.1  https://support.google.com/mail/?p=DisabledUser ID - gsmtp
  over-quota (RCPT):
    552-5.2.2 The recipient's inbox is out of storage space and inactive. Please
    552-5.2.2 direct the recipient to
    552 5.2.2 https://support.google.com/mail/?p=OverQuotaPerm ID - gsmtp
  quota-temp (RCPT):
    452-4.2.2 The recipient's inbox is out of storage space. Please direct the
    452-4.2.2 recipient to
    452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp ID - gsmtp
  receiving-rate (RCPT): 450-4.2.1 The user you are trying to contact is receiving mail at a rate that ... (6 lines)
  tls-required (RCPT without TLS, then close):
    421 4.7.0 TLS required for RCPT domain, closing connection. For more information, go to Email encryption in transit. https://support.google.com/mail/answer/6330403 ID - gsmtp
  ip-not-allowlisted (RCPT from outside `allow`, then close):
    421 4.7.0 IP not in whitelist for RCPT domain, closing connection. For more information, go to Allowlists, denylists, and approved senders. ID - gsmtp
  auth-required (MAIL without AUTH):
    530 5.5.1 Authentication Required. For more information, visit https://support.google.com/accounts/troubleshooter/2402620 ID - gsmtp
  bad-credentials (AUTH), and xoauth2 after the challenge:
    535-5.7.8 Username and Password not accepted. For more information, go to
    535 5.7.8  https://support.google.com/mail/?p=BadCredentials ID - gsmtp
  app-password (AUTH):
    534-5.7.9 Application-specific password required. For more information, go to
    534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor ID - gsmtp
  xoauth2 (AUTH XOAUTH2):
    334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==
  too-many-logins (AUTH): 454 4.7.0 Too many login attempts, please try again later. ID - gsmtp
  dmarc (end of data): 550-5.7.26 Unauthenticated email from DOMAIN is not accepted due to domain's ... (5 lines)
  spf-fail (end of data): 550-5.7.26 The MAIL FROM domain [DOMAIN] has an SPF record with a hard fail ... (6 lines)
  unauthenticated (end of data): 550 5.7.26 This message does not have authentication information or fails to pass authentication checks (SPF or DKIM). ... ID - gsmtp
  unsolicited (end of data):
    550-5.7.1 [IP      12] Gmail has detected that this message is
    550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,
    550-5.7.1 this message has been blocked. For more information, go to
    550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError ID - gsmtp
  no-ptr (end of data): 550-5.7.25 [IP] The IP address sending this message does not have a ... (5 lines)
  attachment (end of data): 552-5.7.0 This message was blocked because its content presents a potential ... (4 lines)
  rate-limited (end of data, then close): 421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating ... (6 lines)
DATA after every RCPT was refused: 503-5.5.1 RCPT first. ... (4 lines).]],

  on_connect = function(s, c, p)
    if AUTH_FAILURES[p.failure] then gmail.submission(s) end
    s:banner(("%s ESMTP %s - gsmtp"):format(s.hostname, gmail.session_id(s)))
  end,

  on_command = function(s, c, p)
    if c.verb == "DATA" and s.mail_from ~= nil and #s.rcpts == 0 then
      return gmail.reply(s, 503, "5.5.1", {
        "RCPT first. A mail transaction protocol command was issued out of",
        "sequence. For more information, go to",
        " https://support.google.com/a/answer/3221692 and review RFC 5321",
        "specifications.",
      })
    end
  end,

  on_auth = function(s, a, p)
    local f = p.failure
    if f == "bad-credentials" then
      return bad_credentials(s)
    elseif f == "app-password" then
      return gmail.reply(s, 534, "5.7.9", {
        "Application-specific password required. For more information, go to",
        " https://support.google.com/mail/?p=InvalidSecondFactor",
      })
    elseif f == "xoauth2" then
      if a.mechanism == "XOAUTH2" and a.step == 1 then
        return emu.reply(XOAUTH2_CHALLENGE)
      end
      return bad_credentials(s)
    elseif f == "too-many-logins" then
      return gmail.reply(s, 454, "4.7.0", { "Too many login attempts, please try again later." })
    end
  end,

  on_mail = function(s, mail, p)
    if p.failure == "auth-required" and not s.authenticated then
      return gmail.reply(s, 530, "5.5.1", {
        "Authentication Required. For more information, visit " ..
        "https://support.google.com/accounts/troubleshooter/2402620",
      })
    end
    if not AUTH_FAILURES[p.failure] then
      return emu.reply(250, "2.1.0", "OK " .. gmail.session_id(s) .. " - gsmtp")
    end
  end,

  on_rcpt = function(s, rcpt, p)
    local h = RCPT[p.failure]
    if h then return h(s, rcpt, p) end
  end,

  on_message = function(s, m, p)
    local h = MESSAGE[p.failure]
    if h then return h(s, m, p) end
  end,
}
