-- lua/exchange.lua: Exchange Online's reply format. Its rejections end
-- with "[HOST TIMESTAMP ID]": the front-end server's name, the UTC time with
-- milliseconds (2025-07-30T19:50:34.124Z) and a 16-digit upper-case hex ID
-- that is the same for every reply about one message (replies.md 1.1,
-- 1.1a, 4.9, 5.15). Use: local exo = emu.lib("exchange").
local M = {}

M.default_host = "BN3PEPF0000B077.namprd04.prod.outlook.com"
M.default_connector = "8f77e953-9856-4ffb-a0aa-867d433584f8"

-- The per-message ID: kept in s.tx, so it changes with each message.
function M.message_id(s)
  local tx = s.tx
  if not tx.exchange_id then tx.exchange_id = emu.random_hex(16) end
  return tx.exchange_id
end

-- "[HOST TIMESTAMP ID]"
function M.stamp(s, host)
  return ("[%s %s %s]"):format(host or M.default_host, emu.utc(), M.message_id(s))
end

-- A rejection in Exchange's form: text followed by the stamp.
function M.reply(s, code, esc, text, host)
  return emu.reply(code, esc, text .. " " .. M.stamp(s, host))
end

-- 5.7.51, the newer wording (replies.md 1.1a, ServiceNow KB bounce).
function M.connector_restricted(s, connector, host)
  return M.reply(s, 550, "5.7.51",
    "TenantInboundAttribution; Rejecting. Recipient has a partner connector " ..
    "with RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set. " ..
    "Connector ID:" .. (connector or M.default_connector) .. ".", host)
end

-- 5.7.51, the older wording (replies.md 1.1).
function M.connector_restricted_legacy(s, host)
  return M.reply(s, 550, "5.7.51",
    "TenantInboundAttribution; There is a partner connector configured " ..
    "that matched the message's recipient domain. The connector had either " ..
    "the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set", host)
end

return M
