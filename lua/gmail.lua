-- lua/gmail.lua: Gmail's reply format. Every line of a multi-line reply
-- repeats "CODE-ESC", and the last one ends with the session's ID and
-- "- gsmtp" (e.g. "d72si22370812qhc.8 - gsmtp", replies.md 6.1). Use only
-- wrappings seen on the wire (replies.md gives them); where only the text
-- is known, send it on one line. Use: local gmail = emu.lib("gmail").
local M = {}

local LOWER = "abcdefghijklmnopqrstuvwxyz"
local DIGITS = "0123456789"

-- One ID per session, shaped like Gmail's ("d72si22370812qhc.8").
function M.session_id(s)
  local d = s.data
  if not d.gmail_id then
    d.gmail_id = emu.random_string(1, LOWER) .. emu.random_string(2, DIGITS) ..
      "si" .. emu.random_string(8, DIGITS) .. emu.random_string(3, LOWER) ..
      "." .. emu.random(1, 99)
  end
  return d.gmail_id
end

-- lines: the text of each wire line (without code and enhanced code).
function M.reply(s, code, esc, lines)
  local out = {}
  for i, l in ipairs(lines) do out[i] = l end
  out[#out] = out[#out] .. " " .. M.session_id(s) .. " - gsmtp"
  return emu.reply(code, esc, out)
end

return M
