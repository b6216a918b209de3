-- scenarios/cert-restriction.lua
--
-- Reproduces an Exchange Online partner connector with
-- RestrictDomainsToCertificate: a sender is served only when it used TLS
-- (STARTTLS or implicit TLS) with a client certificate that verifies
-- against the CA (--tls-ca; the test CA in certs/ by default) and whose
-- subjectAltName DNS names (or CN, when there are none) match cert_domain
-- (RFC 6125: a "*." wildcard stands for exactly one leftmost label).
-- Anyone else gets the 5.7.51 rejection at RCPT (replies.md 1.1a, 2.18);
-- style=require-tls refuses MAIL without TLS with Postfix's
-- "530 5.7.0 Must issue a STARTTLS command first" (replies.md 2.1).
--
-- certs/ has client.pem (matches mail.example.com), client-wrong.pem,
-- client-expired.pem and client-untrusted.pem to try each refusal.
-- Parameters: cert_domain, style, connector_id, exchange_host.
local exo = emu.lib("exchange")

local function name_matches(pattern, name)
  pattern, name = pattern:lower(), name:lower()
  if pattern == name then return true end
  local rest = pattern:match("^%*(%..+)$")
  if not rest then return false end
  local label, tail = name:match("^([^.]+)(%..+)$")
  return label ~= nil and tail == rest
end

-- Why the client is not served, or nil when it is.
local function refusal(s, p)
  local tls = s.tls
  if not tls then return "no TLS" end
  local cert = tls.cert
  if not cert then return "no client certificate" end
  if not cert.verified then return "certificate not trusted: " .. cert.error end
  local names = #cert.dns_names > 0 and cert.dns_names or { cert.cn }
  for _, n in ipairs(names) do
    if name_matches(n, p.cert_domain) or name_matches(p.cert_domain, n) then
      return nil
    end
  end
  return "certificate is for " .. table.concat(names, ",")
end

return {
  name = "cert-restriction",
  description = "Serve only TLS clients with a trusted certificate for cert_domain (Exchange RestrictDomainsToCertificate)",
  params = {
    cert_domain = { default = "mail.example.com",
                    help = "the name the client certificate must carry (SAN, or CN without SANs)" },
    style = { default = "exchange", choices = { "exchange", "exchange-legacy", "require-tls" },
              help = "exchange: 5.7.51 at RCPT; require-tls: 530 at MAIL without TLS, else 5.7.51" },
    connector_id = { default = exo.default_connector, help = "the Connector ID in the 5.7.51 reply" },
    exchange_host = { default = exo.default_host,
                      help = "the server in Exchange's [HOST TIMESTAMP ID] block" },
  },
  replies = [[
Without TLS, without a certificate, with an untrusted or expired one, or one
for another name, each RCPT gets:
  550 5.7.51 TenantInboundAttribution; Rejecting. Recipient has a partner connector with RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set. Connector ID:CONNECTOR. [HOST TIMESTAMP ID]
(exchange-legacy: the older 5.7.51 wording). With style=require-tls, MAIL
without TLS gets:
  530 5.7.0 Must issue a STARTTLS command first]],

  on_mail = function(s, mail, p)
    if p.style == "require-tls" and not s.tls then
      return emu.reply(530, "5.7.0", "Must issue a STARTTLS command first")
    end
  end,

  on_rcpt = function(s, rcpt, p)
    local why = refusal(s, p)
    if not why then return nil end
    s:log("refused: " .. why)
    if p.style == "exchange-legacy" then
      return exo.connector_restricted_legacy(s, p.exchange_host)
    end
    return exo.connector_restricted(s, p.connector_id, p.exchange_host)
  end,
}
