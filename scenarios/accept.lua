-- scenarios/accept.lua: the default scenario. It has no hooks, so every
-- stage gets the core server's own answer: Postfix's wording, every
-- message accepted with "250 2.0.0 Ok: queued as ID" and captured.
return {
  name = "accept",
  description = "Accept everything, like a well-configured Postfix (the default)",
  replies = [[
Postfix's replies: 220 HOST ESMTP smtp-emulator, 250 2.1.0 Ok (MAIL),
250 2.1.5 Ok (RCPT), 354 End data with <CR><LF>.<CR><LF>,
250 2.0.0 Ok: queued as ID (end of data), 221 2.0.0 Bye.]],
}
