-- scenarios/exchange-online.lua
--
-- Microsoft 365 / Exchange Online refusing mail, one `failure` at a time,
-- with the exact line Exchange Online sends, at the stage it sends it.
-- Every line below is from ../shared/reference/replies.md (entry number)
-- or docs/reply-sources.md (section). "[HOST TIMESTAMP ID]" is Exchange's
-- stamp (lua/exchange.lua); it is added only where the source line has it.
--
--   failure                stage  reply                                                    source
--   ip-restricted          RCPT   550 5.7.51 TenantInboundAttribution; Rejecting. ... Connector ID:CID. [HOST TS ID]
--                                 (client not in `allow`; wording=legacy: the older 5.7.51)   1.1a / 1.1
--   cert-restricted        RCPT   the same 5.7.51, unless TLS with a trusted client
--                                 certificate for `cert_domain`                              1.1a, 2.18
--   banned-ip              RCPT   550 5.7.606 Access denied, banned sending IP [IP]. ... (AS16012609)
--                                 (two spaces before http://go.microsoft.com)                 1.4, reply-sources 10b
--   relay-denied           RCPT   550 5.7.64 TenantAttribution; Relay Access Denied SMTP       1.2
--   direct-send            RCPT   550 5.7.68 TenantInboundAttribution; Direct Send not allowed ...  1.3
--                                 (unauthenticated senders from `tenant_domains`, or all when empty)
--   no-auth                MAIL   530 5.7.57 Client not authenticated to send mail.            3.1
--                                 (without a successful AUTH; any credentials are accepted)
--   basic-auth-off         AUTH   535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication
--                                 is disabled for the Tenant|Mailbox. Visit https://aka.ms/smtp_auth_disabled ...  3.2
--   security-defaults      AUTH   535 5.7.139 Authentication unsuccessful, user is locked by your
--                                 organization's security defaults policy.                   3.3
--   auth-criteria          AUTH   535 5.7.139 Authentication unsuccessful, the request did not meet
--                                 the criteria to be authenticated successfully.             3.3
--   bad-password           AUTH   535 5.7.3 Authentication unsuccessful                        3.4
--                                 (the four AUTH failures also refuse MAIL without AUTH with 3.1,
--                                 as smtp.office365.com does)
--   recipient-not-found    RCPT   550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup  6.7
--   access-denied          RCPT   550 5.4.1 Recipient address rejected: Access denied. For more
--                                 information see https://aka.ms/EXOSmtpErrors [HOST]        6.8 (newer form)
--                                 wording=legacy: 550 5.4.1 [RCPT]: Recipient address rejected: Access denied [HOST]  6.8
--   unable-to-relay        RCPT   550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain  6.9
--   customer-block-list    RCPT   550 5.7.513 Service unavailable, Client host [IP] blocked by
--                                 RCPTDOMAIN using Customer Block list (AS16012607)           5.17
--   traffic-not-accepted   RCPT   550 5.7.708 Service unavailable. Access denied, traffic not accepted
--                                 from this IP. For more information please go to
--                                 http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230) [HOST TS ID]  reply-sources 5d
--   restricted-group       RCPT   550 5.7.1 RESOLVER.RST.NotAuthorizedToGroup; not authorized to send to the distribution list  reply-sources 5c
--   not-authorized         RCPT   550 5.7.1 RESOLVER.RST.NotAuthorized; not authorized        reply-sources 5c
--   auth-required          RCPT   550 5.7.1 RESOLVER.RST.AuthRequired; authentication required (unauthenticated)  reply-sources 5c
--   group-auth-required    RCPT   550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication
--                                 required; Delivery restriction check failed because the sender was not
--                                 authenticated when sending to this group (unauthenticated)  reply-sources 5c
--   throttled              MAIL   451 4.7.650 The mail server [IP] has been temporarily rate limited due to
--                                 IP reputation. For e-mail delivery information, see https://postmaster.live.com (S3113) [HOST TS ID]
--                                                                                            4.9, stage: reply-sources 10c
--   outlook-block-list     MAIL   550 5.7.1 Unfortunately, messages from [IP] weren't sent. ... (AS3150). ... [HOST]
--                                 (Outlook.com's front end)                                  1.5
--   starttls-required      MAIL   451 5.7.3 STARTTLS is required to send mail (without TLS)   reply-sources 5a
--   dmarc                  EOD    550 5.7.509 Access denied, sending domain [DOMAIN] does not pass DMARC
--                                 verification and has a DMARC policy of reject. [HOST TS ID]  5.15, reply-sources 10e
--                                 (DOMAIN: the From: header's domain, upper-cased as in the source)
--   auth-level             EOD    550 5.7.515 Access denied, sending domain DOMAIN doesn't meet the required
--                                 authentication level. ... Spf= Fail , Dkim= Pass , DMARC= Pass  5.16, reply-sources 10e
--   rfc5322                EOD    550 5.7.512 Access denied, message must be RFC 5322 section 3.6.2 compliant  5.18
--   transport-rule         EOD    550 5.7.900 TRANSPORT.RULES.RejectMessage; the message was rejected by organization policy  5.19
--   delivery-not-authorized EOD   550 5.7.1 Delivery not authorized, message refused          reply-sources 5e
--   external-forwarding    EOD    550 5.7.520 Access denied, Your organization does not allow external
--                                 forwarding. Please contact your administrator for further assistance. AS(7555)  reply-sources 5b
--   service-unavailable    connect 421 4.3.2 Service not available, then close             reply-sources 5f (replies.md 7.13)
--
-- In every failure, AUTH or MAIL before EHLO/HELO (e.g. right after
-- STARTTLS) gets Exchange's "503 5.5.2 Send hello first" (3.5, reply-sources 5f).
--
-- Stages: where the source names the stage it is used; the RESOLVER.RST
-- lines (5c) are per-recipient checks whose stage the sources do not show,
-- so they are sent at RCPT. 5.7.520 and 5.7.708 are Exchange Online's own
-- refusals of a tenant's outbound mail (reply-sources 5b, 5d): here they
-- are what the submission or relay client is answered.
local exo = emu.lib("exchange")

local FAILURES = {
  "ip-restricted", "cert-restricted", "banned-ip", "relay-denied", "direct-send",
  "no-auth", "basic-auth-off", "security-defaults", "auth-criteria", "bad-password",
  "recipient-not-found", "access-denied", "unable-to-relay", "customer-block-list",
  "traffic-not-accepted", "restricted-group", "not-authorized", "auth-required",
  "group-auth-required", "throttled", "outlook-block-list", "starttls-required",
  "dmarc", "auth-level", "rfc5322", "transport-rule", "delivery-not-authorized",
  "external-forwarding", "service-unavailable",
}

-- Failures that make smtp.office365.com refuse MAIL without AUTH.
local SUBMISSION = {
  ["no-auth"] = true, ["basic-auth-off"] = true, ["security-defaults"] = true,
  ["auth-criteria"] = true, ["bad-password"] = true,
}

local function member(list, v)
  v = (v or ""):lower()
  for _, x in ipairs(list) do
    if x:lower() == v then return true end
  end
  return false
end

-- The From: header's domain, else the envelope sender's.
local function from_domain(s, m)
  local from = m:header("From") or ""
  local d = from:match("<[^>]*@([^>]+)>") or from:match("[^%s<@,;]+@([^%s>,;]+)")
  if not d and s.mail_from then d = s.mail_from:match("@([^@]+)$") end
  return d or ""
end

local function delegate(name, p)
  if name == "ip-allowlist" then
    return emu.use("ip-allowlist", {
      allow = table.concat(p.allow, ","),
      style = p.wording == "legacy" and "exchange-legacy" or "exchange",
      connector_id = p.connector_id, exchange_host = p.exchange_host,
    })
  end
  return emu.use("cert-restriction", {
    cert_domain = p.cert_domain,
    style = p.wording == "legacy" and "exchange-legacy" or "exchange",
    connector_id = p.connector_id, exchange_host = p.exchange_host,
  })
end

local RCPT = {
  ["banned-ip"] = function(s, rcpt, p)
    return emu.reply(550, "5.7.606", ("Access denied, banned sending IP [%s]. To request " ..
      "removal from this list please visit https://sender.office.com/ and follow the " ..
      "directions. For more information please go to  http://go.microsoft.com/fwlink/" ..
      "?LinkID=526655 (AS16012609)"):format(s.client_ip))
  end,
  ["relay-denied"] = function()
    return emu.reply(550, "5.7.64", "TenantAttribution; Relay Access Denied SMTP")
  end,
  ["direct-send"] = function(s, rcpt, p)
    if s.authenticated then return nil end
    local d = (s.mail_from or ""):match("@([^@]+)$")
    if #p.tenant_domains > 0 and not member(p.tenant_domains, d) then return nil end
    return emu.reply(550, "5.7.68", "TenantInboundAttribution; Direct Send not allowed " ..
      "for this organization from unauthorized sources")
  end,
  ["recipient-not-found"] = function()
    return emu.reply(550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found " ..
      "by SMTP address lookup")
  end,
  ["access-denied"] = function(s, rcpt, p)
    if p.wording == "legacy" then
      return emu.reply(550, "5.4.1", ("[%s]: Recipient address rejected: Access denied [%s]")
        :format(rcpt.address, p.exchange_host))
    end
    return emu.reply(550, "5.4.1", ("Recipient address rejected: Access denied. For more " ..
      "information see https://aka.ms/EXOSmtpErrors [%s]"):format(p.exchange_host))
  end,
  ["unable-to-relay"] = function()
    return emu.reply(550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain")
  end,
  ["customer-block-list"] = function(s, rcpt)
    return emu.reply(550, "5.7.513", ("Service unavailable, Client host [%s] blocked by %s " ..
      "using Customer Block list (AS16012607)"):format(s.client_ip, rcpt.domain))
  end,
  ["traffic-not-accepted"] = function(s, rcpt, p)
    return exo.reply(s, 550, "5.7.708", "Service unavailable. Access denied, traffic not " ..
      "accepted from this IP. For more information please go to " ..
      "http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230)", p.exchange_host)
  end,
  ["restricted-group"] = function()
    return emu.reply(550, "5.7.1", "RESOLVER.RST.NotAuthorizedToGroup; not authorized to " ..
      "send to the distribution list")
  end,
  ["not-authorized"] = function()
    return emu.reply(550, "5.7.1", "RESOLVER.RST.NotAuthorized; not authorized")
  end,
  ["auth-required"] = function(s)
    if s.authenticated then return nil end
    return emu.reply(550, "5.7.1", "RESOLVER.RST.AuthRequired; authentication required")
  end,
  ["group-auth-required"] = function(s)
    if s.authenticated then return nil end
    return emu.reply(550, "5.7.133", "RESOLVER.RST.SenderNotAuthenticatedForGroup; " ..
      "authentication required; Delivery restriction check failed because the sender " ..
      "was not authenticated when sending to this group")
  end,
  ["ip-restricted"] = function(s, rcpt, p)
    return delegate("ip-allowlist", p):call("on_rcpt", s, rcpt)
  end,
  ["cert-restricted"] = function(s, rcpt, p)
    return delegate("cert-restriction", p):call("on_rcpt", s, rcpt)
  end,
}

local MESSAGE = {
  dmarc = function(s, m, p)
    return exo.reply(s, 550, "5.7.509", ("Access denied, sending domain [%s] does not pass " ..
      "DMARC verification and has a DMARC policy of reject."):format(from_domain(s, m):upper()),
      p.exchange_host)
  end,
  ["auth-level"] = function(s, m)
    return emu.reply(550, "5.7.515", ("Access denied, sending domain %s doesn't meet the " ..
      "required authentication level. The sender's domain in the 5322.From address " ..
      "doesn't meet the authentication requirements defined for the sender. To learn how " ..
      "to fix this see: https://go.microsoft.com/fwlink/p/?linkid=2319303 Spf= Fail , " ..
      "Dkim= Pass , DMARC= Pass"):format(from_domain(s, m):upper()))
  end,
  rfc5322 = function()
    return emu.reply(550, "5.7.512", "Access denied, message must be RFC 5322 section 3.6.2 compliant")
  end,
  ["transport-rule"] = function()
    return emu.reply(550, "5.7.900", "TRANSPORT.RULES.RejectMessage; the message was " ..
      "rejected by organization policy")
  end,
  ["delivery-not-authorized"] = function()
    return emu.reply(550, "5.7.1", "Delivery not authorized, message refused")
  end,
  ["external-forwarding"] = function()
    return emu.reply(550, "5.7.520", "Access denied, Your organization does not allow " ..
      "external forwarding. Please contact your administrator for further assistance. AS(7555)")
  end,
}

return {
  name = "exchange-online",
  description = "Microsoft 365 / Exchange Online refusals (5.7.51 connectors, 5.7.606, 5.7.57, 5.7.139, 5.1.10, 5.7.509, ...) by `failure`",
  params = {
    failure = { default = "ip-restricted", choices = FAILURES,
                help = "which refusal (see --describe exchange-online)" },
    wording = { default = "current", choices = { "current", "legacy" },
                help = "5.7.51 and 5.4.1: the current or the older wording" },
    exchange_host = { default = exo.default_host,
                      help = "the front-end server named in [HOST ...] blocks" },
    connector_id = { default = exo.default_connector, help = "the Connector ID in 5.7.51" },
    allow = { default = { "192.0.2.0/24" }, type = "cidrs",
              help = "ip-restricted: client addresses the partner connector allows" },
    cert_domain = { default = "mail.example.com",
                    help = "cert-restricted: the name the client certificate must carry" },
    tenant_domains = { default = {}, type = "list",
                       help = "direct-send: the tenant's accepted domains (empty: every sender)" },
    auth_scope = { default = "Tenant", choices = { "Tenant", "Mailbox" },
                   help = "basic-auth-off: SMTP AUTH disabled for the Tenant or the Mailbox" },
  },
  replies = [[
By failure (stage: reply):
  ip-restricted, cert-restricted  RCPT: 550 5.7.51 TenantInboundAttribution; Rejecting. Recipient has a partner connector with RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set. Connector ID:CONNECTOR. [HOST TIMESTAMP ID]
  banned-ip            RCPT: 550 5.7.606 Access denied, banned sending IP [IP]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to  http://go.microsoft.com/fwlink/?LinkID=526655 (AS16012609)
  relay-denied         RCPT: 550 5.7.64 TenantAttribution; Relay Access Denied SMTP
  direct-send          RCPT: 550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources
  no-auth              MAIL: 530 5.7.57 Client not authenticated to send mail.
  basic-auth-off       AUTH: 535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.
  security-defaults    AUTH: 535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy.
  auth-criteria        AUTH: 535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully.
  bad-password         AUTH: 535 5.7.3 Authentication unsuccessful
  recipient-not-found  RCPT: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup
  access-denied        RCPT: 550 5.4.1 Recipient address rejected: Access denied. For more information see https://aka.ms/EXOSmtpErrors [HOST]
  unable-to-relay      RCPT: 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain
  customer-block-list  RCPT: 550 5.7.513 Service unavailable, Client host [IP] blocked by RCPTDOMAIN using Customer Block list (AS16012607)
  traffic-not-accepted RCPT: 550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230) [HOST TIMESTAMP ID]
  restricted-group     RCPT: 550 5.7.1 RESOLVER.RST.NotAuthorizedToGroup; not authorized to send to the distribution list
  not-authorized       RCPT: 550 5.7.1 RESOLVER.RST.NotAuthorized; not authorized
  auth-required        RCPT: 550 5.7.1 RESOLVER.RST.AuthRequired; authentication required
  group-auth-required  RCPT: 550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required; Delivery restriction check failed because the sender was not authenticated when sending to this group
  throttled            MAIL: 451 4.7.650 The mail server [IP] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S3113) [HOST TIMESTAMP ID]
  outlook-block-list   MAIL: 550 5.7.1 Unfortunately, messages from [IP] weren't sent. Please contact your Internet service provider since part of their network is on our block list (AS3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [HOST]
  starttls-required    MAIL without TLS: 451 5.7.3 STARTTLS is required to send mail
  dmarc                end of data: 550 5.7.509 Access denied, sending domain [DOMAIN] does not pass DMARC verification and has a DMARC policy of reject. [HOST TIMESTAMP ID]
  auth-level           end of data: 550 5.7.515 Access denied, sending domain DOMAIN doesn't meet the required authentication level. ... Spf= Fail , Dkim= Pass , DMARC= Pass
  rfc5322              end of data: 550 5.7.512 Access denied, message must be RFC 5322 section 3.6.2 compliant
  transport-rule       end of data: 550 5.7.900 TRANSPORT.RULES.RejectMessage; the message was rejected by organization policy
  delivery-not-authorized  end of data: 550 5.7.1 Delivery not authorized, message refused
  external-forwarding  end of data: 550 5.7.520 Access denied, Your organization does not allow external forwarding. Please contact your administrator for further assistance. AS(7555)
  service-unavailable  connect: 421 4.3.2 Service not available (then close)
The session goes on after each refusal except service-unavailable.
AUTH or MAIL before EHLO: 503 5.5.2 Send hello first.]],

  on_connect = function(s, c, p)
    if p.failure == "service-unavailable" then
      return emu.reply(421, "4.3.2", "Service not available")
    end
  end,

  on_command = function(s, c, p)
    if (c.verb == "AUTH" or c.verb == "MAIL") and s.helo == nil then
      return emu.reply(503, "5.5.2", "Send hello first")
    end
  end,

  on_auth = function(s, a, p)
    local f = p.failure
    if f == "basic-auth-off" then
      return emu.reply(535, "5.7.139", ("Authentication unsuccessful, SmtpClientAuthentication " ..
        "is disabled for the %s. Visit https://aka.ms/smtp_auth_disabled for more information.")
        :format(p.auth_scope))
    elseif f == "security-defaults" then
      return emu.reply(535, "5.7.139", "Authentication unsuccessful, user is locked by your " ..
        "organization's security defaults policy.")
    elseif f == "auth-criteria" then
      return emu.reply(535, "5.7.139", "Authentication unsuccessful, the request did not meet " ..
        "the criteria to be authenticated successfully.")
    elseif f == "bad-password" then
      return emu.reply(535, "5.7.3", "Authentication unsuccessful")
    end
  end,

  on_mail = function(s, mail, p)
    local f = p.failure
    if SUBMISSION[f] and not s.authenticated then
      return emu.reply(530, "5.7.57", "Client not authenticated to send mail.")
    elseif f == "throttled" then
      return exo.reply(s, 451, "4.7.650", ("The mail server [%s] has been temporarily rate " ..
        "limited due to IP reputation. For e-mail delivery information, see " ..
        "https://postmaster.live.com (S3113)"):format(s.client_ip), p.exchange_host)
    elseif f == "outlook-block-list" then
      return emu.reply(550, "5.7.1", ("Unfortunately, messages from [%s] weren't sent. Please " ..
        "contact your Internet service provider since part of their network is on our " ..
        "block list (AS3150). You can also refer your provider to " ..
        "http://mail.live.com/mail/troubleshooting.aspx#errors. [%s]")
        :format(s.client_ip, p.exchange_host))
    elseif f == "starttls-required" and not s.tls then
      return emu.reply(451, "5.7.3", "STARTTLS is required to send mail")
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
