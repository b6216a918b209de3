-- scenarios/ip-allowlist.lua
--
-- Reproduces a receiving server that serves only listed client addresses.
-- The headline case is Exchange Online with a partner connector restricted
-- to IP addresses (RestrictDomainsToIPAddresses): the connection, EHLO and
-- MAIL succeed, and every RCPT is refused with 5.7.51 -- the bounce a
-- ServiceNow instance gets when it is not in the tenant's connector.
--
-- Replies, from ../shared/reference/replies.md:
--   style=exchange         1.1a  550 5.7.51 TenantInboundAttribution; Rejecting. ... [HOST TIMESTAMP ID]
--   style=exchange-legacy  1.1   550 5.7.51 TenantInboundAttribution; There is a partner connector ...
--   style=postfix          1.6   554 5.7.1 <unknown[ADDR]>: Client host rejected: Access denied (at RCPT)
--   style=banner           1.6 + 7.4  the greeting is that 554 line (smtpd_delay_reject = no);
--                          later commands but QUIT get 503 5.7.0 Error: access denied for unknown[ADDR]
--   style=eof              1.27/9  the connection is closed before any greeting
--                          (Java: "Got bad greeting ... response: [EOF]";
--                          Python: SMTPServerDisconnected('Connection unexpectedly closed'))
--
-- Parameters: allow (CIDRs), style, connector_id, exchange_host.
-- A local client is refused by default (allow is 192.0.2.0/24); use
-- XCLIENT ADDR=192.0.2.10 (or --set allow=127.0.0.1) to be served.
local exo = emu.lib("exchange")
local pf = emu.lib("postfix")

-- One parsed set per parameter table (parameters never change in a state).
local sets = setmetatable({}, { __mode = "k" })

local function allowed(s, p)
  local set = sets[p]
  if not set then
    set = emu.net.cidrs(p.allow)
    sets[p] = set
  end
  return set:contains(s.client_ip)
end

return {
  name = "ip-allowlist",
  description = "Serve only listed client IPs; refuse others like Exchange Online (5.7.51), Postfix, or with an EOF",
  params = {
    allow = { default = { "192.0.2.0/24" }, type = "cidrs",
              help = "client addresses that are served (comma-separated CIDRs)" },
    style = { default = "exchange",
              choices = { "exchange", "exchange-legacy", "eof", "postfix", "banner" },
              help = "how other clients are refused" },
    connector_id = { default = exo.default_connector,
                     help = "the Connector ID in the 5.7.51 reply" },
    exchange_host = { default = exo.default_host,
                      help = "the server in Exchange's [HOST TIMESTAMP ID] block" },
  },
  replies = [[
exchange (default), at each RCPT:
  550 5.7.51 TenantInboundAttribution; Rejecting. Recipient has a partner connector with RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set. Connector ID:CONNECTOR. [HOST 2025-07-30T19:50:34.124Z 08DDCC4D90F450B0]
exchange-legacy, at each RCPT:
  550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set [HOST TIMESTAMP ID]
postfix, at each RCPT:
  554 5.7.1 <unknown[ADDR]>: Client host rejected: Access denied
banner, as the greeting (then 503 5.7.0 Error: access denied for unknown[ADDR] to all but QUIT):
  554 5.7.1 <unknown[ADDR]>: Client host rejected: Access denied
eof: the connection is closed before the greeting (clients report [EOF]).]],

  on_connect = function(s, client, p)
    if allowed(s, p) then return nil end
    if p.style == "eof" then return emu.drop() end
    if p.style == "banner" then return pf.client_access_denied(s) end
    return nil
  end,

  on_rcpt = function(s, rcpt, p)
    if allowed(s, p) then return nil end
    if p.style == "exchange" then
      return exo.connector_restricted(s, p.connector_id, p.exchange_host)
    elseif p.style == "exchange-legacy" then
      return exo.connector_restricted_legacy(s, p.exchange_host)
    elseif p.style == "postfix" then
      return pf.client_access_denied(s)
    end
    return nil
  end,
}
