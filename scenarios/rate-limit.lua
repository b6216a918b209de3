-- scenarios/rate-limit.lua
--
-- A receiving server that throttles: at most `limit` messages (or
-- connections) per `window` seconds for each client address, each sender,
-- or each (client address, sender) pair (`key`). Past the limit the client
-- gets the chosen provider's temporary refusal (`style`), at the stage that
-- provider sends it, and the connection is closed or kept as that provider
-- does. The window is fixed: it starts with the first count of a key and
-- the count starts over when it ends (emu.state.incr with a TTL, on the
-- scenario clock, so the control API's clock can end a window at once).
--
-- What is counted (`count`):
--   mail     each MAIL FROM (one message attempt); the attempt that goes
--            over the limit is refused, and so is every later one in the
--            window -- refused attempts count too, as with Postfix's anvil
--   message  each message accepted after its final dot; once `limit` are
--            accepted, the next attempts are refused until the window ends
--   connect  each connection, always per client address (no sender is known
--            yet); a connection over the limit is refused at connect
--            (postfix) or at the stage where the provider refuses
--
-- Replies, from ../shared/reference/replies.md and docs/reply-sources.md:
--   style=postfix, count=mail|message (7.6), at MAIL, session kept:
--     450 4.7.1 Error: too much mail from unknown[ADDR]
--   style=postfix, count=connect (7.1), instead of the greeting, then close:
--     421 4.7.0 HOST Error: too many connections from ADDR
--   style=gmail (reply-sources.md 4a; replies.md 5.7), at RCPT, then close
--   (every 421 closes); key=client names the IP Netblock (the MailKit
--   capture), key=sender|client-sender the sender's SPF domain (the Brevo
--   capture). The lines keep the captures' wrapping and their literal
--   "      34" / "      35" after the address; ID is Gmail's session ID:
--     421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating
--     421-4.7.28 from your IP Netblock [ADDR      34]. To protect our users
--     421-4.7.28 from spam, mail sent from your IP Netblock has been temporarily rate
--     421-4.7.28 limited. For more information, go to
--     421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to
--     421 4.7.28 review our Bulk Email Senders Guidelines. ID - gsmtp
--   style=gmail-receiving (reply-sources.md 4b, lines derived by splitting
--   the two joined captures at the code markers; replies.md 4.6), at RCPT,
--   session kept:
--     450-4.2.1 The user you are trying to contact is receiving mail at a rate that
--     450-4.2.1 prevents additional messages from being delivered. Please resend your
--     450-4.2.1 message at a later time. If the user is able to receive mail at that
--     450-4.2.1 time, your message will be delivered. For more information, please
--     450-4.2.1 visit
--     450 4.2.1  https://support.google.com/mail/answer/6592 ID - gsmtp
--   style=exchange (4.9), at MAIL, session kept; [HOST TIMESTAMP ID] is
--   Exchange Online's stamp (lua/exchange.lua):
--     451 4.7.650 The mail server [ADDR] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S3113) [HOST TIMESTAMP ID]
--   style=yahoo (7.9), at MAIL, then close:
--     421 4.7.0 [TSS04] Messages from ADDR temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes
--
-- --set limit=0 refuses the first attempt: handy for seeing the reply.
local pf = emu.lib("postfix")
local gmail = emu.lib("gmail")
local exo = emu.lib("exchange")

-- The stage at which each provider refuses.
local STAGE = {
  postfix = "mail", ["gmail"] = "rcpt", ["gmail-receiving"] = "rcpt",
  exchange = "mail", yahoo = "mail",
}

local function counter_key(s, sender, p)
  if p.count == "connect" or p.key == "client" then
    return p.count .. "/client/" .. s.client_ip
  end
  sender = (sender or ""):lower()
  if p.key == "sender" then
    return p.count .. "/sender/" .. sender
  end
  return p.count .. "/client-sender/" .. s.client_ip .. "/" .. sender
end

-- Is the current attempt over the limit?
local function over(s, sender, p)
  if p.count == "connect" then return s.data.rate_limited == true end
  if p.count == "mail" then return s.tx.rate_limited == true end
  local n = emu.state.get(counter_key(s, sender, p)) or 0
  return n >= p.limit
end

local function gmail_unusual_rate(s, p)
  local domain = (s.mail_from or ""):match("@([^@]+)$")
  if p.key ~= "client" and domain and domain ~= "" then
    return gmail.reply(s, 421, "4.7.28", {
      "Gmail has detected an unusual rate of mail originating from your SPF",
      ("domain [%s      35]. To protect our users from"):format(domain),
      "spam, mail sent from your domain has been temporarily rate limited.",
      "For more information, go to",
      " https://support.google.com/mail/?p=UnsolicitedRateLimitError to",
      "review our Bulk Email Senders Guidelines.",
    })
  end
  return gmail.reply(s, 421, "4.7.28", {
    "Gmail has detected an unusual rate of unsolicited mail originating",
    ("from your IP Netblock [%s      34]. To protect our users"):format(s.client_ip),
    "from spam, mail sent from your IP Netblock has been temporarily rate",
    "limited. For more information, go to",
    " https://support.google.com/mail/?p=UnsolicitedRateLimitError to",
    "review our Bulk Email Senders Guidelines.",
  })
end

local function refusal(s, p)
  local style = p.style
  s:log(("rate-limit: over %d per %g s (%s, %s)"):format(p.limit, p.window, p.count, p.key))
  if style == "postfix" then
    return emu.reply(450, "4.7.1", "Error: too much mail from " .. pf.client(s))
  elseif style == "gmail" then
    return gmail_unusual_rate(s, p)
  elseif style == "gmail-receiving" then
    return gmail.reply(s, 450, "4.2.1", {
      "The user you are trying to contact is receiving mail at a rate that",
      "prevents additional messages from being delivered. Please resend your",
      "message at a later time. If the user is able to receive mail at that",
      "time, your message will be delivered. For more information, please",
      "visit",
      " https://support.google.com/mail/answer/6592",
    })
  elseif style == "exchange" then
    return exo.reply(s, 451, "4.7.650",
      ("The mail server [%s] has been temporarily rate limited due to IP reputation. " ..
       "For e-mail delivery information, see https://postmaster.live.com (S3113)"):format(s.client_ip),
      p.exchange_host)
  end
  -- yahoo: a 421, so the connection closes after it.
  return emu.reply(421, "4.7.0",
    ("[TSS04] Messages from %s temporarily deferred due to unexpected volume " ..
     "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes")
    :format(s.client_ip))
end

return {
  name = "rate-limit",
  description = "N messages or connections per window per client/sender, then a provider's 4xx (Postfix, Gmail, Exchange, Yahoo)",
  params = {
    limit = { default = 10, type = "integer", help = "messages or connections allowed per window" },
    window = { default = 60, type = "number", help = "seconds in a window (fixed, from the first count)" },
    key = { default = "client", choices = { "client", "sender", "client-sender" },
            help = "what is limited: client address, envelope sender, or both together" },
    count = { default = "mail", choices = { "mail", "message", "connect" },
              help = "mail: MAIL commands; message: accepted messages; connect: connections (per client)" },
    style = { default = "postfix", choices = { "postfix", "gmail", "gmail-receiving", "exchange", "yahoo" },
              help = "whose refusal, at its stage and with its effect on the connection" },
    exchange_host = { default = exo.default_host,
                      help = "style=exchange: the server in the [HOST TIMESTAMP ID] block" },
  },
  replies = [[
Over the limit (ADDR: the client address, HOST: --hostname, ID: per message):
  postfix, at MAIL (kept):
    450 4.7.1 Error: too much mail from unknown[ADDR]
  postfix with count=connect, instead of the greeting (closed):
    421 4.7.0 HOST Error: too many connections from ADDR
  gmail, at RCPT (closed):
    421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating
    421-4.7.28 from your IP Netblock [ADDR      34]. To protect our users
    421-4.7.28 from spam, mail sent from your IP Netblock has been temporarily rate
    421-4.7.28 limited. For more information, go to
    421-4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError to
    421 4.7.28 review our Bulk Email Senders Guidelines. ID - gsmtp
    (key=sender or client-sender: "...originating from your SPF" /
    "domain [SENDER-DOMAIN      35]. To protect our users from" /
    "spam, mail sent from your domain has been temporarily rate limited." /
    "For more information, go to" / the same last two lines)
  gmail-receiving, at RCPT (kept):
    450-4.2.1 The user you are trying to contact is receiving mail at a rate that
    450-4.2.1 prevents additional messages from being delivered. Please resend your
    450-4.2.1 message at a later time. If the user is able to receive mail at that
    450-4.2.1 time, your message will be delivered. For more information, please
    450-4.2.1 visit
    450 4.2.1  https://support.google.com/mail/answer/6592 ID - gsmtp
  exchange, at MAIL (kept):
    451 4.7.650 The mail server [ADDR] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S3113) [HOST TIMESTAMP ID]
  yahoo, at MAIL (closed):
    421 4.7.0 [TSS04] Messages from ADDR temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes
With count=connect and another style, an over-limit connection is greeted
as usual and refused at that style's stage.]],

  on_connect = function(s, client, p)
    if p.count ~= "connect" then return nil end
    local n = emu.state.incr(counter_key(s, nil, p), 1, p.window)
    if n <= p.limit then return nil end
    s.data.rate_limited = true
    if p.style == "postfix" then
      s:log(("rate-limit: connection %d of %d per %g s"):format(math.floor(n), p.limit, p.window))
      return emu.reply(421, "4.7.0", ("%s Error: too many connections from %s")
        :format(emu.hostname, s.client_ip))
    end
    return nil
  end,

  on_mail = function(s, mail, p)
    if p.count == "mail" then
      local n = emu.state.incr(counter_key(s, mail.address, p), 1, p.window)
      s.tx.rate_limited = n > p.limit
    end
    if STAGE[p.style] == "mail" and over(s, mail.address, p) then
      return refusal(s, p)
    end
    return nil
  end,

  on_rcpt = function(s, rcpt, p)
    if STAGE[p.style] == "rcpt" and over(s, s.mail_from, p) then
      return refusal(s, p)
    end
    return nil
  end,

  on_message = function(s, m, p)
    if p.count == "message" then
      emu.state.incr(counter_key(s, m.mail_from, p), 1, p.window)
    end
    return nil
  end,
}
