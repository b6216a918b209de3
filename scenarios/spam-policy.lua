-- scenarios/spam-policy.lua
--
-- Content filtering after the end of the data (the "message" stage,
-- replies.md's EOD). A message is refused when it contains the GTUBE test
-- string, one of `keywords` (case-insensitive, headers or body), comes
-- from a sender in `blocked_senders` (envelope sender or From: header;
-- an entry "@example.com" blocks a whole domain), carries an attachment
-- whose extension is in `blocked_extensions`, or -- with dmarc=reject --
-- has a From: domain in `dmarc_domains` and no DKIM-Signature header.
-- Accepted messages are captured as usual.
--
-- Replies, by style:
--   rspamd (default), every refusal (replies.md 5.1a):
--     554 5.7.1 Spam message rejected
--   gmail, in Gmail's wire form where replies.md has it:
--     spam, keywords, GTUBE, blocked sender -- 5.1 (page text only, so
--       one line, ending with Gmail's "<id> - gsmtp"):
--       550 5.7.1 Our system has detected that this message is likely unsolicited mail. ...
--     DMARC -- 5.2 (wire form, the domain substituted):
--       550-5.7.26 Unauthenticated email from DOMAIN is not accepted due to domain's ...
--     attachment -- 5.9 (wire form):
--       552-5.7.0 This message was blocked because its content presents a potential ...
local gmail = emu.lib("gmail")

local GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

-- A plain string.find looks for the first byte of what it seeks with
-- memchr, then compares; GTUBE starts with "X", which bulk test mail is
-- full of. So look for GTUBE's rarer middle and check the whole string
-- around each hit: the same answer, without a compare at every "X".
local GTUBE_MID = "*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*"
local GTUBE_MID_AT = GTUBE:find(GTUBE_MID, 1, true) - 1

local function has_gtube(raw)
  local i = 1
  while true do
    local at = raw:find(GTUBE_MID, i, true)
    if not at then return false end
    local start = at - GTUBE_MID_AT
    if start >= 1 and raw:sub(start, start + #GTUBE - 1) == GTUBE then
      return true
    end
    i = at + 1
  end
end

local function address_of(v)
  if not v then return nil end
  local a = v:match("<([^>]*)>") or v:match("([^%s,;]+@[^%s,;]+)")
  return a and a:lower()
end

local function domain_of(a)
  return a and a:match("@([^@]+)$")
end

local function listed(list, addr)
  if not addr then return false end
  for _, b in ipairs(list) do
    b = b:lower()
    if b == addr or (b:sub(1, 1) == "@" and domain_of(addr) == b:sub(2)) then
      return true
    end
  end
  return false
end

-- Why the message is refused: "spam", "dmarc", "attachment", or nil.
local function verdict(s, m, p)
  if has_gtube(m.raw) then return "spam", "GTUBE" end
  local lower -- the lowercased message, made only when there are keywords
  for _, k in ipairs(p.keywords) do
    lower = lower or m.raw:lower()
    if lower:find(k:lower(), 1, true) then return "spam", "keyword " .. k end
  end
  local from = address_of(m:header("From"))
  if listed(p.blocked_senders, (s.mail_from or ""):lower()) or listed(p.blocked_senders, from) then
    return "spam", "blocked sender"
  end
  for _, name in ipairs(m:attachments()) do
    local ext = name:match("%.([%w]+)$")
    for _, b in ipairs(p.blocked_extensions) do
      if ext and ext:lower() == b:lower():gsub("^%.", "") then
        return "attachment", name
      end
    end
  end
  if p.dmarc == "reject" then
    local d = domain_of(from)
    for _, dd in ipairs(p.dmarc_domains) do
      if d and d == dd:lower() and not m:header("DKIM-Signature") then
        return "dmarc", d
      end
    end
  end
  return nil
end

local function gmail_reply(s, why, detail)
  if why == "dmarc" then
    return gmail.reply(s, 550, "5.7.26", {
      ("Unauthenticated email from %s is not accepted due to domain's"):format(detail),
      ("DMARC policy. Please contact the administrator of %s domain if"):format(detail),
      "this was a legitimate mail. To learn about the DMARC initiative, go",
      "to",
      " https://support.google.com/mail/?p=DmarcRejection",
    })
  elseif why == "attachment" then
    return gmail.reply(s, 552, "5.7.0", {
      "This message was blocked because its content presents a potential",
      "security issue. Please visit",
      " https://support.google.com/mail/answer/6590 to review our message",
      "content and attachment content guidelines.",
    })
  end
  return gmail.reply(s, 550, "5.7.1", {
    "Our system has detected that this message is likely unsolicited mail. " ..
    "To reduce the amount of spam sent to Gmail, this message has been blocked. " ..
    "For more information, visit https://support.google.com/mail/answer/188131",
  })
end

return {
  name = "spam-policy",
  description = "Refuse spam after the data: GTUBE, keywords, blocked senders or attachments, DMARC (rspamd or Gmail wording)",
  params = {
    style = { default = "rspamd", choices = { "rspamd", "gmail" }, help = "whose wording" },
    keywords = { default = {}, type = "list", help = "words that mark a message as spam (comma-separated)" },
    blocked_senders = { default = {}, type = "list",
                        help = "senders refused (addresses, or @domain), envelope or From:" },
    blocked_extensions = { default = { "exe", "bat", "cmd", "com", "js", "jar", "scr", "vbs", "msi", "ps1" },
                           type = "list", help = "attachment extensions refused" },
    dmarc = { default = "none", choices = { "none", "reject" },
              help = "reject: From: domains in dmarc_domains need a DKIM-Signature" },
    dmarc_domains = { default = {}, type = "list", help = "domains with a DMARC reject policy" },
  },
  replies = [[
rspamd (default), any refusal:
  554 5.7.1 Spam message rejected
gmail:
  spam (GTUBE, keywords, blocked sender):
    550 5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked. For more information, visit https://support.google.com/mail/answer/188131 ID - gsmtp
  DMARC:
    550-5.7.26 Unauthenticated email from DOMAIN is not accepted due to domain's
    550-5.7.26 DMARC policy. Please contact the administrator of DOMAIN domain if
    550-5.7.26 this was a legitimate mail. To learn about the DMARC initiative, go
    550-5.7.26 to
    550 5.7.26  https://support.google.com/mail/?p=DmarcRejection ID - gsmtp
  attachment:
    552-5.7.0 This message was blocked because its content presents a potential
    552-5.7.0 security issue. Please visit
    552-5.7.0  https://support.google.com/mail/answer/6590 to review our message
    552 5.7.0 content and attachment content guidelines. ID - gsmtp]],

  on_message = function(s, m, p)
    local why, detail = verdict(s, m, p)
    if not why then return nil end
    s:log(("spam-policy: refused (%s: %s)"):format(why, detail))
    if p.style == "gmail" then return gmail_reply(s, why, detail) end
    return emu.reply(554, "5.7.1", "Spam message rejected")
  end,
}
