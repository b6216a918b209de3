-- lua/gmail.lua: Gmail's reply format. Every line of a multi-line reply
-- repeats "CODE-ESC", and the last one ends with the session's ID and
-- "- gsmtp". Use only wrappings seen on the wire (replies.md and
-- docs/reply-sources.md give them); where only the text is known, send it
-- on one line. Use: local gmail = emu.lib("gmail").
local M = {}

local HEX = "0123456789abcdef"
local DIGITS = "0123456789"

-- One ID per session, in the shape Gmail uses since about 2023
-- (docs/reply-sources.md 1a, 2a, 4a, 4d):
--   ffacd0b85a97d-42583ab9ab6si2621680f8f.237   (inbound MX: "si")
--   d2e1a72fcca58-842822222ccsm30363112b3a.3    (smtp.gmail.com submission: "sm")
-- 13 hex digits, "-", 11 hex digits, "si" or "sm", digits, a short hex
-- tail starting with a letter, "." and a small number. Call
-- M.submission(s) before the first use for the "sm" form.
function M.session_id(s)
  local d = s.data
  if not d.gmail_id then
    d.gmail_id = emu.random_string(13, HEX) .. "-" .. emu.random_string(11, HEX) ..
      (d.gmail_submission and "sm" or "si") .. emu.random_string(7, DIGITS) ..
      emu.random_string(1, "abcdef") .. emu.random_string(2, HEX) ..
      "." .. emu.random(1, 299)
  end
  return d.gmail_id
end

-- Mark the session as smtp.gmail.com submission (IDs with "sm").
function M.submission(s)
  s.data.gmail_submission = true
end

-- lines: the text of each wire line (without code and enhanced code).
-- A line that starts with a space gives Gmail's two spaces before a URL.
function M.reply(s, code, esc, lines)
  local out = {}
  for i, l in ipairs(lines) do out[i] = l end
  out[#out] = out[#out] .. " " .. M.session_id(s) .. " - gsmtp"
  return emu.reply(code, esc, out)
end

return M
