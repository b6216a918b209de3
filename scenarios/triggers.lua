-- scenarios/triggers.lua
--
-- In-band triggers: the client under test picks the failure itself, by
-- the address it sends to (or from), and nobody touches the server. Any
-- other address is served normally (Postfix's default replies).
--
-- Grammar. The trigger word is the local part of the RCPT TO (or MAIL
-- FROM) address, lower-cased; when the local part holds a '+', the part
-- after its last '+' is tried too (user+rcpt550_5.1.1@example.com). The
-- domain does not matter unless `domains` lists the domains that carry
-- triggers.
--
--   word    = reply / ending / "slow" / "greylist"
--   reply   = stage CODE [ "_" ESC ]
--   ending  = ("eof" / "reset" / "hang") "-at-" stage
--   stage   = "mail"      MAIL FROM only: the reply to MAIL
--           / "rcpt"      RCPT TO only: the reply to that RCPT
--           / "data"      either: the reply to DATA (or BDAT) -- the RCPT
--                         (or MAIL) itself is accepted
--           / "message"   either: the reply after the final dot
--   CODE    = three digits from 400 to 599
--   ESC     = class "." subject "." detail, 1-3 digits each (5.1.1)
--
--   reply   answers CODE ESC with Postfix's text for that code at that
--           stage (table below). Postfix forces the ESC's class digit to
--           the code's (replies.md, intro), and so does this scenario:
--           rcpt550_4.1.1 answers 550 5.1.1. Without ESC, the first
--           entry for CODE at that stage (failing that, at any stage) is
--           used, else ESC is C.0.0. Where
--           Postfix has no text for CODE ESC, the text is `text`
--           ("Error: refused by trigger"). A 421 closes the connection
--           after the reply, as Postfix does; every other reply keeps it.
--   eof     closes the connection (FIN) instead of that stage's reply;
--   reset   aborts it (RST); hang sends nothing and holds the socket open
--           for `hang_timeout` seconds. (scenarios/abrupt-eof.lua does
--           the same for every session.)
--   slow    this reply (MAIL or RCPT) and every later one of the
--           transaction (DATA, end of data) come `slow_delay` seconds late
--   greylist  the recipient (as sender: every recipient of the
--           transaction) is greylisted by scenarios/greylisting.lua with
--           delay=`greylist_delay`: 450 4.2.0 ... Greylisted ... until a
--           retry after the delay.
--   A data or message trigger from the sender wins over the recipients';
--   among recipients, the first accepted one with such a trigger wins.
--   With --set always=WORD every address (in `domains`, when set) carries
--   WORD whatever its local part: the router uses this for unknown@,
--   spam@ and relay-denied@. The null sender <> carries no trigger.
--
-- Postfix's texts (../shared/reference/replies.md, docs/reply-sources.md;
-- RCPT = the recipient, SENDER = the sender, ADDR = the client address,
-- HOST = --hostname, unknown[ADDR] = Postfix's client name):
--   rcpt  550 5.1.1  <RCPT>: Recipient address rejected: User unknown in local recipient table (6.10)
--   rcpt  450 4.2.0  <RCPT>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/DOMAIN.html (4.1, postgrey)
--   rcpt  452 4.5.3  Error: too many recipients (6.13)
--   rcpt  554 5.7.1  <RCPT>: Relay access denied (1.7)
--   rcpt  550 5.7.1  Service unavailable; client [ADDR] blocked using zen.spamhaus.org (1.10, postscreen)
--   rcpt  450 4.7.1  Error: too many recipients from unknown[ADDR] (7.6)
--   rcpt  450 4.7.25 Client host rejected: cannot find your hostname, [ADDR] (1.24)
--   rcpt  550 5.7.25 Client host rejected: cannot find your hostname, [ADDR] (1.24)
--   rcpt  450 4.1.2  <RCPT>: Recipient address rejected: Domain not found (reply-sources.md 8)
--   rcpt  550 5.1.2  <RCPT>: Recipient address rejected: Domain not found (reply-sources.md 8)
--   rcpt  556 5.1.10 <RCPT>: Recipient address rejected: Domain DOMAIN does not accept mail (nullMX) (reply-sources.md 8)
--   rcpt  504 5.5.2  <RCPT>: Recipient address rejected: need fully-qualified address (reply-sources.md 8)
--   mail  450 4.7.1  Error: too much mail from unknown[ADDR] (7.6)
--   mail  554 5.7.1  <SENDER>: Sender address rejected: Access denied (1.6's REJECT form, class "Sender address")
--   mail  553 5.7.1  <SENDER>: Sender address rejected: not logged in (3.19)
--   mail  450 4.1.8  <SENDER>: Sender address rejected: Domain not found (reply-sources.md 8)
--   mail  550 5.1.8  <SENDER>: Sender address rejected: Domain not found (reply-sources.md 8)
--   mail  553 5.1.8  <SENDER>: Sender address rejected: Domain not found (reply-sources.md 8)
--   mail  550 5.7.27 <SENDER>: Sender address rejected: Domain DOMAIN does not accept mail (nullMX) (reply-sources.md 8)
--   mail  504 5.5.2  <SENDER>: Sender address rejected: need fully-qualified address (reply-sources.md 8)
--   mail  552 5.3.4  Message size exceeds fixed limit (8.11)
--   mail  501 5.1.7  Bad sender address syntax (8.10)
--   data  554 5.5.1  Error: no valid recipients (8.13)
--   data  503 5.5.1  Error: need RCPT command (8.13)
--   message 550 5.7.1 Error: message content rejected (5.24)
--   message 552 5.3.4 Error: message file too big (8.11)
--   message 451 4.3.0 Error: queue file write error (7.7)
--   message 554 5.7.1 Spam message rejected (5.1a, rspamd's milter reject through Postfix)
--   message 421 4.7.0 Server closing connection (5.25, milter shutdown)
--   message 421 4.3.5 Server configuration error (5.25)
--   any   421 4.7.0  HOST Error: too many errors (7.2)
--   any   421 4.4.2  HOST Error: timeout exceeded (7.3)
--   any   421 4.3.0  HOST Server local error (7.7)
--   any   530 5.7.0  Must issue a STARTTLS command first (2.1)
local pf = emu.lib("postfix")

-- x: the address the text is about (the recipient at RCPT, the sender at
-- MAIL) as {address, domain}.
local function rcpt_rejected(text)
  return function(s, x) return ("<%s>: Recipient address rejected: %s"):format(x.address, text) end
end
local function sender_rejected(text)
  return function(s, x) return ("<%s>: Sender address rejected: %s"):format(x.address, text) end
end
local function fixed(text)
  return function() return text end
end
local function hostname_cannot_be_found(s)
  return ("Client host rejected: cannot find your hostname, [%s]"):format(s.client_ip)
end

-- Per stage, in order of preference for a CODE without ESC.
local TEXTS = {
  rcpt = {
    { 550, "5.1.1", rcpt_rejected("User unknown in local recipient table") },
    { 450, "4.2.0", function(s, x)
        return ("<%s>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/%s.html")
          :format(x.address, x.domain)
      end },
    { 452, "4.5.3", fixed("Error: too many recipients") },
    { 554, "5.7.1", function(s, x) return ("<%s>: Relay access denied"):format(x.address) end },
    { 550, "5.7.1", function(s)
        return ("Service unavailable; client [%s] blocked using zen.spamhaus.org"):format(s.client_ip)
      end },
    { 450, "4.7.1", function(s) return "Error: too many recipients from " .. pf.client(s) end },
    { 450, "4.7.25", hostname_cannot_be_found },
    { 550, "5.7.25", hostname_cannot_be_found },
    { 450, "4.1.2", rcpt_rejected("Domain not found") },
    { 550, "5.1.2", rcpt_rejected("Domain not found") },
    { 556, "5.1.10", function(s, x)
        return ("<%s>: Recipient address rejected: Domain %s does not accept mail (nullMX)")
          :format(x.address, x.domain)
      end },
    { 504, "5.5.2", rcpt_rejected("need fully-qualified address") },
  },
  mail = {
    { 450, "4.7.1", function(s) return "Error: too much mail from " .. pf.client(s) end },
    { 554, "5.7.1", sender_rejected("Access denied") },
    { 553, "5.7.1", sender_rejected("not logged in") },
    { 450, "4.1.8", sender_rejected("Domain not found") },
    { 550, "5.1.8", sender_rejected("Domain not found") },
    { 553, "5.1.8", sender_rejected("Domain not found") },
    { 550, "5.7.27", function(s, x)
        return ("<%s>: Sender address rejected: Domain %s does not accept mail (nullMX)")
          :format(x.address, x.domain)
      end },
    { 504, "5.5.2", sender_rejected("need fully-qualified address") },
    { 552, "5.3.4", fixed("Message size exceeds fixed limit") },
    { 501, "5.1.7", fixed("Bad sender address syntax") },
  },
  data = {
    { 554, "5.5.1", fixed("Error: no valid recipients") },
    { 503, "5.5.1", fixed("Error: need RCPT command") },
  },
  message = {
    { 550, "5.7.1", fixed("Error: message content rejected") },
    { 552, "5.3.4", fixed("Error: message file too big") },
    { 451, "4.3.0", fixed("Error: queue file write error") },
    { 554, "5.7.1", fixed("Spam message rejected") },
    { 421, "4.7.0", fixed("Server closing connection") },
    { 421, "4.3.5", fixed("Server configuration error") },
  },
  any = {
    { 421, "4.7.0", function() return emu.hostname .. " Error: too many errors" end },
    { 421, "4.4.2", function() return emu.hostname .. " Error: timeout exceeded" end },
    { 421, "4.3.0", function() return emu.hostname .. " Server local error" end },
    { 530, "5.7.0", fixed("Must issue a STARTTLS command first") },
  },
}

local function find(list, code, esc)
  for _, e in ipairs(list) do
    if e[1] == code and (esc == nil or e[2] == esc) then return e end
  end
  return nil
end

-- Which stages a trigger may name in a sender and in a recipient.
local STAGES = {
  mail = { mail = true, data = true, message = true },
  rcpt = { rcpt = true, data = true, message = true },
}

-- The trigger one word names, or nil.
local function parse_word(w, where)
  if w == "slow" or w == "greylist" then return { kind = w } end
  local how, st = w:match("^(%a+)%-at%-(%a+)$")
  if how == "eof" or how == "reset" or how == "hang" then
    if STAGES[where][st] then return { kind = "end", how = how, stage = st } end
    return nil
  end
  local stage, code, rest = w:match("^(%a+)(%d%d%d)(.*)$")
  if not stage or not STAGES[where][stage] then return nil end
  code = tonumber(code)
  if code < 400 or code > 599 then return nil end
  local esc
  if rest ~= "" then
    local a, b, c = rest:match("^_(%d)%.(%d%d?%d?)%.(%d%d?%d?)$")
    if not a then return nil end
    -- Postfix forces the class digit to the reply code's first digit.
    esc = ("%d.%d.%d"):format(code // 100, tonumber(b), tonumber(c))
  end
  return { kind = "reply", stage = stage, code = code, esc = esc, word = w }
end

-- The trigger an address carries (x: MAIL's or RCPT's table), or nil.
local function trigger(x, where, p)
  if x.address == "" then return nil end
  if #p.domains > 0 then
    local d, ok = (x.domain or ""):lower(), false
    for _, dd in ipairs(p.domains) do
      if dd:lower() == d then ok = true end
    end
    if not ok then return nil end
  end
  if p.always ~= "" then return parse_word(p.always:lower(), where) end
  local lp = (x.local_part or ""):lower()
  local t = parse_word(lp, where)
  if t then return t end
  local tag = lp:match("%+([^+]*)$")
  return tag and parse_word(tag, where) or nil
end

-- The decision for a trigger at its stage; x is the address it is about.
local function act(s, t, x, p)
  s:log(("trigger: %s at %s (%s)"):format(t.kind == "end" and t.how or "reply",
    t.stage, x.address))
  if t.kind == "end" then
    if t.how == "eof" then return emu.drop() end
    if t.how == "reset" then return emu.reset() end
    return emu.hang(p.hang_timeout)
  end
  -- The stage's own text for CODE ESC (or, without ESC, its first for
  -- CODE), else one that Postfix sends at any stage.
  local e = find(TEXTS[t.stage], t.code, t.esc) or find(TEXTS.any, t.code, t.esc)
  if e then return emu.reply(e[1], e[2], e[3](s, x)) end
  return emu.reply(t.code, t.esc or ("%d.0.0"):format(t.code // 100), p.text)
end

-- slow: every later reply of the transaction comes late.
local function late(s, d, p)
  if not s.tx.triggers_slow then return d end
  if d == nil then return emu.delay(p.slow_delay) end
  return d:after(p.slow_delay)
end

local function greylisting(p)
  return emu.use("greylisting", { delay = p.greylist_delay })
end

-- A data or message trigger waits in s.tx for its stage.
local function remember(s, t, x)
  local k = "triggers_at_" .. t.stage
  if not s.tx[k] then s.tx[k] = { t = t, x = { address = x.address, domain = x.domain } } end
end

local function at_stage(stage)
  return function(s, _, p)
    local w = s.tx["triggers_at_" .. stage]
    local d = w and act(s, w.t, w.x, p) or nil
    return late(s, d, p)
  end
end

return {
  name = "triggers",
  description = "In-band triggers: the recipient or sender address picks the reply (rcpt550_5.1.1@, eof-at-data@, slow@, greylist@, ...)",
  params = {
    text = { default = "Error: refused by trigger",
             help = "text for a CODE ESC that Postfix has no text for" },
    domains = { default = {}, type = "list",
                help = "only addresses in these domains carry triggers (empty: any domain)" },
    slow_delay = { default = 5, type = "number", help = "slow: seconds each later reply is late" },
    hang_timeout = { default = 600, type = "number", help = "hang-at-*: seconds before the server closes" },
    greylist_delay = { default = 300, type = "number", help = "greylist: seconds before a retry passes" },
    always = { default = "",
               help = "a trigger word every address carries, whatever its local part (the router uses it)" },
  },
  replies = [[
The local part (or the part after its last '+') picks the reply:
  rcpt550_5.1.1@x (RCPT)  550 5.1.1 <rcpt550_5.1.1@x>: Recipient address rejected: User unknown in local recipient table
  rcpt450_4.2.0@x         450 4.2.0 <...>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/x.html
  rcpt452_4.5.3@x         452 4.5.3 Error: too many recipients
  rcpt554_5.7.1@x         554 5.7.1 <...>: Relay access denied
  rcpt550_5.7.1@x         550 5.7.1 Service unavailable; client [ADDR] blocked using zen.spamhaus.org
  rcpt450_4.7.1@x         450 4.7.1 Error: too many recipients from unknown[ADDR]
  rcpt450_4.7.25@x / rcpt550_5.7.25@x   ... Client host rejected: cannot find your hostname, [ADDR]
  rcpt450_4.1.2@x / rcpt550_5.1.2@x     ... <...>: Recipient address rejected: Domain not found
  rcpt556_5.1.10@x        556 5.1.10 <...>: Recipient address rejected: Domain x does not accept mail (nullMX)
  rcpt504_5.5.2@x         504 5.5.2 <...>: Recipient address rejected: need fully-qualified address
  mail450_4.7.1@x (MAIL)  450 4.7.1 Error: too much mail from unknown[ADDR]
  mail554_5.7.1@x         554 5.7.1 <...>: Sender address rejected: Access denied
  mail553_5.7.1@x         553 5.7.1 <...>: Sender address rejected: not logged in
  mail450_4.1.8@x / mail550_5.1.8@x / mail553_5.1.8@x   ... <...>: Sender address rejected: Domain not found
  mail550_5.7.27@x        550 5.7.27 <...>: Sender address rejected: Domain x does not accept mail (nullMX)
  mail504_5.5.2@x         504 5.5.2 <...>: Sender address rejected: need fully-qualified address
  mail552_5.3.4@x         552 5.3.4 Message size exceeds fixed limit
  mail501_5.1.7@x         501 5.1.7 Bad sender address syntax
  data554_5.5.1@x (DATA)  554 5.5.1 Error: no valid recipients
  data503_5.5.1@x         503 5.5.1 Error: need RCPT command
  message550_5.7.1@x (after the dot)  550 5.7.1 Error: message content rejected
  message552_5.3.4@x      552 5.3.4 Error: message file too big
  message451_4.3.0@x      451 4.3.0 Error: queue file write error
  message554_5.7.1@x      554 5.7.1 Spam message rejected
  message421_4.7.0@x      421 4.7.0 Server closing connection (then close)
  message421_4.3.5@x      421 4.3.5 Server configuration error (then close)
  any stage, 421_4.7.0 / 421_4.4.2 / 421_4.3.0 (then close):
                          421 4.7.0 HOST Error: too many errors / HOST Error: timeout exceeded / HOST Server local error
  any stage, 530_5.7.0    530 5.7.0 Must issue a STARTTLS command first
  any other code:         CODE ESC Error: refused by trigger (the `text` parameter)
  Without _ESC (rcpt550@x): the first of the above for that code, else CODE C.0.0 and `text`.
  eof-at-STAGE@x / reset-at-STAGE@x / hang-at-STAGE@x: FIN, RST or silence instead of
    the reply at STAGE (mail, rcpt, data, message)
  slow@x: this and each later reply of the message `slow_delay` seconds late
  greylist@x: postgrey's 450 4.2.0 ... Greylisted ... until a retry after `greylist_delay` s]],

  on_mail = function(s, mail, p)
    local t = trigger(mail, "mail", p)
    if not t then return nil end
    if t.kind == "slow" then
      s.tx.triggers_slow = true
      return emu.delay(p.slow_delay)
    elseif t.kind == "greylist" then
      s.tx.triggers_greylist = true
      return nil
    elseif t.stage == "mail" then
      return act(s, t, mail, p)
    end
    remember(s, t, mail)
    return nil
  end,

  on_rcpt = function(s, rcpt, p)
    if s.tx.triggers_greylist then
      local d = greylisting(p):call("on_rcpt", s, rcpt)
      if d ~= nil then return late(s, d, p) end
    end
    local t = trigger(rcpt, "rcpt", p)
    local d
    if not t then
      d = nil
    elseif t.kind == "slow" then
      s.tx.triggers_slow = true
    elseif t.kind == "greylist" then
      d = greylisting(p):call("on_rcpt", s, rcpt)
    elseif t.stage == "rcpt" then
      d = act(s, t, rcpt, p)
    else
      remember(s, t, rcpt)
    end
    return late(s, d, p)
  end,

  on_data = at_stage("data"),
  on_message = at_stage("message"),
}
