-- scenarios/exim.lua
--
-- A site's own Exim refusing mail by its ACLs, one `failure` at a time, in
-- Exim's words (smtp_in.c, route.c, configure.default). Exim's replies
-- carry no enhanced status codes. Sources: ../shared/reference/replies.md.
--
--   failure                stage          reply                                              source
--   admin-prohibition      acl_stage      550 Administrative prohibition                     1.13
--                          (an ACL "deny" without message=; acl_stage = mail, rcpt (default)
--                          or data (the end-of-data ACL); acl_verb=drop closes afterwards)
--   relay-not-permitted    RCPT           550 relay not permitted                            1.14
--                          (recipients outside `local_domains`; an authenticated client may relay)
--   unknown-user           RCPT           550 Unknown user  (configure.default)              6.14
--   unrouteable            RCPT           550 Unrouteable address  (route.c)                 6.14
--   defer                  RCPT           451 Temporary local problem - please try later     4.5
--   message-too-large      MAIL           552 Message size exceeds maximum permitted  (SIZE= over max_size)  8.21
--   too-many-connections   connect        421 HOST: Too many concurrent SMTP connections; please try again later, close  1.26
--                          (more than connection_limit concurrent connections from the client address)
--   host-not-allowed       connect        554 SMTP service not available, close              1.15
--   too-much-load          connect        421 HOST: Too much load; please try again later, close  7.8
--
-- HOST is --hostname. The session goes on after the 4xx/5xx except where
-- noted. Left out: an oversized message at end of data (Exim's wording for
-- it there is not in the sources).

local FAILURES = {
  "admin-prohibition", "relay-not-permitted", "unknown-user", "unrouteable", "defer",
  "message-too-large", "too-many-connections", "host-not-allowed", "too-much-load",
}

local function member(list, v)
  v = (v or ""):lower()
  for _, x in ipairs(list) do
    if x:lower() == v then return true end
  end
  return false
end

local function prohibition(p)
  local d = emu.reply(550, nil, "Administrative prohibition")
  if p.acl_verb == "drop" then d = d:close() end
  return d
end

return {
  name = "exim",
  description = "A site's Exim refusing by ACL: 550 Administrative prohibition, relay not permitted, Unknown user, connection limits",
  params = {
    failure = { default = "admin-prohibition", choices = FAILURES, help = "which refusal (see --describe exim)" },
    acl_stage = { default = "rcpt", choices = { "mail", "rcpt", "data" },
                  help = "admin-prohibition: the ACL that denies (data: after the message)" },
    acl_verb = { default = "deny", choices = { "deny", "drop" },
                 help = "admin-prohibition: deny keeps the session, drop closes it after the reply" },
    local_domains = { default = {}, type = "list",
                      help = "relay-not-permitted: domains this server accepts mail for (empty: none)" },
    max_size = { default = 52428800, type = "integer",
                 help = "message-too-large: message_size_limit in bytes (Exim's default 50M)" },
    connection_limit = { default = 0, type = "integer",
                         help = "too-many-connections: concurrent connections allowed per client address (0: none)" },
  },
  replies = [[
admin-prohibition (RCPT; acl_stage=mail: MAIL; data: end of data): 550 Administrative prohibition
relay-not-permitted (RCPT):  550 relay not permitted
unknown-user (RCPT):         550 Unknown user
unrouteable (RCPT):          550 Unrouteable address
defer (RCPT):                451 Temporary local problem - please try later
message-too-large (MAIL with SIZE= over max_size): 552 Message size exceeds maximum permitted
too-many-connections (connect, then close): 421 HOST: Too many concurrent SMTP connections; please try again later
host-not-allowed (connect, then close):     554 SMTP service not available
too-much-load (connect, then close):        421 HOST: Too much load; please try again later]],

  on_connect = function(s, c, p)
    local f = p.failure
    if f == "too-many-connections" then
      local n = emu.state.incr("conn/" .. s.client_ip, 1, 3600)
      s.data.counted = true
      if n > p.connection_limit then
        return emu.reply(421, nil, s.hostname .. ": Too many concurrent SMTP connections; please try again later")
      end
    elseif f == "host-not-allowed" then
      return emu.reply(554, nil, "SMTP service not available"):close()
    elseif f == "too-much-load" then
      return emu.reply(421, nil, s.hostname .. ": Too much load; please try again later")
    end
  end,

  on_disconnect = function(s, x, p)
    if s.data.counted then emu.state.incr("conn/" .. s.client_ip, -1, 3600) end
  end,

  on_mail = function(s, mail, p)
    local f = p.failure
    if f == "admin-prohibition" and p.acl_stage == "mail" then
      return prohibition(p)
    elseif f == "message-too-large" then
      for k, v in pairs(mail.params or {}) do
        if k:upper() == "SIZE" and (tonumber(v) or 0) > p.max_size then
          return emu.reply(552, nil, "Message size exceeds maximum permitted")
        end
      end
    end
  end,

  on_rcpt = function(s, rcpt, p)
    local f = p.failure
    if f == "admin-prohibition" and p.acl_stage == "rcpt" then
      return prohibition(p)
    elseif f == "relay-not-permitted" and not s.authenticated and not member(p.local_domains, rcpt.domain) then
      return emu.reply(550, nil, "relay not permitted")
    elseif f == "unknown-user" then
      return emu.reply(550, nil, "Unknown user")
    elseif f == "unrouteable" then
      return emu.reply(550, nil, "Unrouteable address")
    elseif f == "defer" then
      return emu.reply(451, nil, "Temporary local problem - please try later")
    end
  end,

  on_message = function(s, m, p)
    if p.failure == "admin-prohibition" and p.acl_stage == "data" then
      return prohibition(p)
    end
  end,
}
