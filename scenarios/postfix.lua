-- scenarios/postfix.lua
--
-- A site's own Postfix refusing mail by its local policy, one `failure` at
-- a time, in Postfix's words (smtpd_check.c, postscreen). Sources:
-- ../shared/reference/replies.md (entry) and docs/reply-sources.md (section 8).
--
--   failure                 stage   reply                                                    source
--   dnsbl                   RCPT    554 5.7.1 Service unavailable; Client host [IP] blocked using DNSBL[; REASON]  1.8
--   postscreen-dnsbl        RCPT    550 5.7.1 Service unavailable; client [IP] blocked using DNSBL  (enforce) 1.10
--                           connect 521 5.7.1 Service unavailable; client [IP] blocked using DNSBL, close  (drop) 1.10
--                           (postscreen_footer: a second line, 521-5.7.1 / 521 5.7.1 FOOTER)  1.11
--   postscreen-denylist     RCPT    550 5.3.2 Service currently unavailable  (enforce)         1.12
--                           connect 521 5.3.2 Service currently unavailable, close  (drop)    1.12
--   client-rejected         RCPT    554 5.7.1 <unknown[IP]>: Client host rejected: Access denied  1.6
--   relay-denied            RCPT    554 5.7.1 <RCPT>: Relay access denied                      1.7
--                           (recipients outside `local_domains`; an authenticated client may relay)
--   unknown-user            RCPT    550 5.1.1 <RCPT>: Recipient address rejected: User unknown in local recipient table  6.10
--                           (user_table=virtual|relay: "... in virtual mailbox table" / "relay recipient table", 6.11;
--                           recipients listed in `known_users` are accepted)
--   helo-not-found          RCPT    450 4.7.1 <HELO>: Helo command rejected: Host not found   reply-sources 8
--                           (unknown_hostname_reject_code=550: 550 5.7.1 ...)
--   helo-not-fqdn           RCPT    504 5.5.2 <HELO>: Helo command rejected: need fully-qualified hostname
--                           (only when the HELO name has no dot)                              reply-sources 8
--   sender-domain-not-found RCPT    450 4.1.8 <SENDER>: Sender address rejected: Domain not found  reply-sources 8
--                           (unknown_address_reject_code=550: 550 5.1.8 ...)
--   sender-nullmx           RCPT    550 5.7.27 <SENDER>: Sender address rejected: Domain DOMAIN does not accept mail (nullMX)
--                                                                                             reply-sources 8 (smtpd_check.c)
--   recipient-nullmx        RCPT    556 5.1.10 <RCPT>: Recipient address rejected: Domain DOMAIN does not accept mail (nullMX)
--                           (the recipient's domain publishes a null MX, RFC 7505: it takes no mail)
--                                                                                             reply-sources 8 (smtpd_check.c)
--   message-too-large       MAIL    552 5.3.4 Message size exceeds fixed limit  (SIZE= over max_size)  8.11
--                           EOD     552 5.3.4 Error: message file too big  (data over max_size)       8.11
--   too-many-connections    connect 421 4.7.0 HOST Error: too many connections from IP, close  7.1
--                           (more than connection_limit concurrent connections from the client address)
--   content-rejected        EOD     550 5.7.1 Error: message content rejected                  5.24
--                           (content_text set: 550 5.7.1 TEXT)
--
-- Stages follow Postfix's default smtpd_delay_reject = yes: client, HELO
-- and sender restrictions answer at RCPT. With delay_reject=false they
-- answer where they are checked (replies.md 1.6, 7.4; reply-sources 8): a
-- client refusal replaces the greeting (then every command but QUIT gets
-- "503 5.7.0 Error: access denied for unknown[IP]", 7.4), a HELO refusal
-- answers HELO/EHLO, a sender refusal answers MAIL. Postfix makes the
-- enhanced code's class follow the reply code (450 4.x.x, 550 5.x.x).
-- The session goes on after each refusal except the 421/521 ones.
--
-- message-too-large: the scenario checks `max_size` itself; EHLO still
-- advertises the server's --max-message-size (run with
-- --max-message-size N to have both agree).
local pf = emu.lib("postfix")

local FAILURES = {
  "dnsbl", "postscreen-dnsbl", "postscreen-denylist", "client-rejected", "relay-denied",
  "unknown-user", "helo-not-found", "helo-not-fqdn", "sender-domain-not-found",
  "sender-nullmx", "recipient-nullmx", "message-too-large", "too-many-connections", "content-rejected",
}

local TABLES = {
  ["local"] = "local recipient table", virtual = "virtual mailbox table",
  relay = "relay recipient table",
}

-- Postfix forces the enhanced code's class digit to the reply code's.
local function dsn(code, esc)
  return tostring(code):sub(1, 1) .. esc:sub(2)
end

local function member(list, v)
  v = (v or ""):lower()
  for _, x in ipairs(list) do
    if x:lower() == v then return true end
  end
  return false
end

-- The refusal a client/HELO/sender restriction gives, or nil.
local function client_check(s, p)
  local f = p.failure
  if f == "dnsbl" then
    local reason = p.dnsbl_reason ~= "" and ("; " .. p.dnsbl_reason) or ""
    return emu.reply(554, "5.7.1", ("Service unavailable; Client host [%s] blocked using %s%s")
      :format(s.client_ip, p.dnsbl_domain, reason))
  elseif f == "client-rejected" then
    return pf.client_access_denied(s)
  end
end

local function helo_check(s, helo, p)
  local f = p.failure
  if f == "helo-not-found" then
    local code = p.unknown_hostname_reject_code
    return pf.reject(code, dsn(code, "4.7.1"), helo, "Helo command", "Host not found")
  elseif f == "helo-not-fqdn" and helo and not helo:find(".", 1, true) then
    return pf.reject(504, "5.5.2", helo, "Helo command", "need fully-qualified hostname")
  end
end

local function sender_check(s, sender, p)
  local f = p.failure
  if sender == nil or sender == "" then return nil end
  if f == "sender-domain-not-found" then
    local code = p.unknown_address_reject_code
    return pf.reject(code, dsn(code, "4.1.8"), sender, "Sender address", "Domain not found")
  elseif f == "sender-nullmx" then
    local domain = sender:match("@([^@]+)$") or ""
    return pf.reject(550, "5.7.27", sender, "Sender address",
      ("Domain %s does not accept mail (nullMX)"):format(domain))
  end
end

-- postscreen's replies; code 550 (enforce) or 521 (drop).
local function postscreen(s, p, code)
  local text
  if p.failure == "postscreen-dnsbl" then
    text = ("Service unavailable; client [%s] blocked using %s"):format(s.client_ip, p.dnsbl_domain)
    local lines = { text }
    if p.postscreen_footer ~= "" then lines[2] = p.postscreen_footer end
    return emu.reply(code, "5.7.1", lines)
  end
  return emu.reply(code, "5.3.2", "Service currently unavailable")
end

local function size_param(params)
  for k, v in pairs(params or {}) do
    if k:upper() == "SIZE" then return tonumber(v) end
  end
end

return {
  name = "postfix",
  description = "A site's Postfix refusing by policy: DNSBL (smtpd and postscreen), relay denied, unknown user, HELO, sender domain, size, connections",
  params = {
    failure = { default = "dnsbl", choices = FAILURES, help = "which refusal (see --describe postfix)" },
    delay_reject = { default = true,
                     help = "smtpd_delay_reject: true answers client/HELO/sender checks at RCPT, false where they are checked" },
    dnsbl_domain = { default = "zen.spamhaus.org", help = "dnsbl, postscreen-dnsbl: the DNSBL named" },
    dnsbl_reason = { default = "", help = "dnsbl: the list's TXT record, appended after '; ' (empty: none)" },
    postscreen_action = { default = "enforce", choices = { "enforce", "drop" },
                          help = "postscreen_dnsbl_action / postscreen_denylist_action" },
    postscreen_footer = { default = "", help = "postscreen-dnsbl: postscreen_reject_footer, a second line" },
    local_domains = { default = {}, type = "list",
                      help = "relay-denied: domains this server accepts mail for (empty: none)" },
    user_table = { default = "local", choices = { "local", "virtual", "relay" },
                   help = "unknown-user: which table the user is unknown in" },
    known_users = { default = {}, type = "list",
                    help = "unknown-user: recipients that exist (addresses or local parts)" },
    unknown_hostname_reject_code = { default = 450, type = "integer", choices = { 450, 550 },
                                     help = "helo-not-found: reply code" },
    unknown_address_reject_code = { default = 450, type = "integer", choices = { 450, 550 },
                                    help = "sender-domain-not-found: reply code" },
    max_size = { default = 10240000, type = "integer",
                 help = "message-too-large: message_size_limit in bytes" },
    connection_limit = { default = 0, type = "integer",
                         help = "too-many-connections: concurrent connections allowed per client address (0: none)" },
    content_text = { default = "", help = "content-rejected: the header_checks REJECT text (empty: Postfix's default)" },
  },
  replies = [[
dnsbl (RCPT):                  554 5.7.1 Service unavailable; Client host [IP] blocked using zen.spamhaus.org
postscreen-dnsbl (enforce, RCPT): 550 5.7.1 Service unavailable; client [IP] blocked using zen.spamhaus.org
postscreen-dnsbl (drop, connect, then close): 521 5.7.1 Service unavailable; client [IP] blocked using zen.spamhaus.org
postscreen-denylist:           550 5.3.2 Service currently unavailable (enforce, RCPT) / 521 5.3.2 ... (drop, connect, close)
client-rejected (RCPT):        554 5.7.1 <unknown[IP]>: Client host rejected: Access denied
relay-denied (RCPT):           554 5.7.1 <RCPT>: Relay access denied
unknown-user (RCPT):           550 5.1.1 <RCPT>: Recipient address rejected: User unknown in local recipient table
helo-not-found (RCPT):         450 4.7.1 <HELO>: Helo command rejected: Host not found
helo-not-fqdn (RCPT):          504 5.5.2 <HELO>: Helo command rejected: need fully-qualified hostname
sender-domain-not-found (RCPT): 450 4.1.8 <SENDER>: Sender address rejected: Domain not found
sender-nullmx (RCPT):          550 5.7.27 <SENDER>: Sender address rejected: Domain DOMAIN does not accept mail (nullMX)
recipient-nullmx (RCPT):       556 5.1.10 <RCPT>: Recipient address rejected: Domain DOMAIN does not accept mail (nullMX)
message-too-large:             552 5.3.4 Message size exceeds fixed limit (MAIL SIZE=) / 552 5.3.4 Error: message file too big (end of data)
too-many-connections (connect, then close): 421 4.7.0 HOST Error: too many connections from IP
content-rejected (end of data): 550 5.7.1 Error: message content rejected
With delay_reject=false, client checks replace the greeting, HELO checks answer
HELO/EHLO and sender checks answer MAIL.]],

  on_connect = function(s, c, p)
    local f = p.failure
    if f == "too-many-connections" then
      local n = emu.state.incr("conn/" .. s.client_ip, 1, 3600)
      s.data.counted = true
      if n > p.connection_limit then
        return emu.reply(421, "4.7.0", ("%s Error: too many connections from %s")
          :format(s.hostname, s.client_ip))
      end
    elseif (f == "postscreen-dnsbl" or f == "postscreen-denylist") and p.postscreen_action == "drop" then
      return postscreen(s, p, 521)
    elseif not p.delay_reject then
      return client_check(s, p)
    end
  end,

  on_disconnect = function(s, x, p)
    if s.data.counted then emu.state.incr("conn/" .. s.client_ip, -1, 3600) end
  end,

  on_ehlo = function(s, helo, p)
    if not p.delay_reject then return helo_check(s, helo, p) end
  end,

  on_mail = function(s, mail, p)
    if p.failure == "message-too-large" then
      local size = size_param(mail.params)
      if size and size > p.max_size then
        return emu.reply(552, "5.3.4", "Message size exceeds fixed limit")
      end
    end
    if not p.delay_reject then return sender_check(s, mail.address, p) end
  end,

  on_rcpt = function(s, rcpt, p)
    local f = p.failure
    if f == "postscreen-dnsbl" or f == "postscreen-denylist" then
      return postscreen(s, p, 550)
    end
    if p.delay_reject then
      local d = client_check(s, p) or helo_check(s, s.helo, p) or sender_check(s, s.mail_from, p)
      if d then return d end
    end
    if f == "relay-denied" and not s.authenticated and not member(p.local_domains, rcpt.domain) then
      return emu.reply(554, "5.7.1", ("<%s>: Relay access denied"):format(rcpt.address))
    elseif f == "recipient-nullmx" then
      return pf.reject(556, "5.1.10", rcpt.address, "Recipient address",
        ("Domain %s does not accept mail (nullMX)"):format(rcpt.domain))
    elseif f == "unknown-user" and not member(p.known_users, rcpt.address)
        and not member(p.known_users, rcpt.local_part) then
      return pf.reject(550, "5.1.1", rcpt.address, "Recipient address",
        "User unknown in " .. TABLES[p.user_table])
    end
  end,

  on_message = function(s, m, p)
    if p.failure == "message-too-large" and m.size > p.max_size then
      return emu.reply(552, "5.3.4", "Error: message file too big")
    elseif p.failure == "content-rejected" then
      if p.content_text ~= "" then return emu.reply(550, "5.7.1", p.content_text) end
      return emu.reply(550, "5.7.1", "Error: message content rejected")
    end
  end,
}
