-- scenarios/proofpoint.lua
--
-- Proofpoint (pphosted.com) refusing a client by IP reputation: the
-- greeting is a 554 and the connection is closed.
--
--   form=current (default): 554 Blocked - see https://ipcheck.proofpoint.com/?ip=IP
--                           docs/reply-sources.md section 6 (banner of mx0b-00262c01.pphosted.com;
--                           real bounces 2017 and 2026)
--   form=legacy:            554 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=IP
--                           replies.md 1.18 (SOE lhost-postfix-38)
--
-- Stage and fate: connect, close (replies.md 1.18). Clients outside
-- `blocked` are served normally (default 0.0.0.0/0 and ::/0: everyone is
-- refused). Note: internet-scan data (reply-sources 6) shows a Proofpoint
-- host answering EHLO after its 554 greeting; what it answers to MAIL then
-- is not documented, so the scenario closes, as replies.md records.
-- Left out: Proofpoint's "Dynamic Reputation" text (no reply code in the
-- source) and Apple's "550 5.7.0 Blocked - see ..." (no stage in the source).

return {
  name = "proofpoint",
  description = "Proofpoint: 554 Blocked - see https://ipcheck.proofpoint.com/?ip=IP as the greeting, then close",
  params = {
    failure = { default = "blocked", choices = { "blocked" }, help = "the refusal (only one is documented)" },
    form = { default = "current", choices = { "current", "legacy" },
             help = "current: ipcheck.proofpoint.com URL; legacy: support.proofpoint.com/dnsbl-lookup.cgi" },
    blocked = { default = { "0.0.0.0/0", "::/0" }, type = "cidrs",
                help = "client addresses that are refused" },
  },
  replies = [[
At connect, instead of the greeting, then close:
  554 Blocked - see https://ipcheck.proofpoint.com/?ip=IP
  (form=legacy: 554 Blocked - see https://support.proofpoint.com/dnsbl-lookup.cgi?ip=IP)]],

  on_connect = function(s, c, p)
    if not emu.net.match(s.client_ip, p.blocked) then return nil end
    local url = p.form == "legacy" and "https://support.proofpoint.com/dnsbl-lookup.cgi?ip="
      or "https://ipcheck.proofpoint.com/?ip="
    return emu.reply(554, nil, "Blocked - see " .. url .. s.client_ip):close()
  end,
}
