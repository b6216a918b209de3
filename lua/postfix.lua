-- lua/postfix.lua: Postfix smtpd's reject formats (smtpd_check.c), so a
-- scenario can say "Postfix refusing X" without pasting text. Postfix
-- forces the enhanced code's class to the reply code's (554 5.7.1).
-- Use: local pf = emu.lib("postfix").
local M = {}

-- "name[addr]" as Postfix names a client ("unknown" without reverse DNS).
function M.client(s)
  return ("%s[%s]"):format(s.client_name or "unknown", s.client_ip)
end

-- "<what>: <class> rejected: <text>" (check_table_result's REJECT form).
function M.reject(code, esc, what, class, text)
  return emu.reply(code, esc, ("<%s>: %s rejected: %s"):format(what, class, text))
end

-- 554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied
-- (replies.md 1.6).
function M.client_access_denied(s)
  return M.reject(554, "5.7.1", M.client(s), "Client host", "Access denied")
end

-- The reply to every command but QUIT after a connect-time rejection
-- (replies.md 7.4).
function M.access_denied_line(s)
  return emu.reply(503, "5.7.0", "Error: access denied for " .. M.client(s))
end

return M
