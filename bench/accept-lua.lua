-- bench/accept-lua.lua: accept everything, like `accept`, but run a
-- little Lua at every stage, so the benchmark shows what the scenario
-- engine costs per hook call. Every hook reads session fields, touches
-- s.data, and returns nil (the default reply).
local function touch(s, what)
  local d = s.data
  d.n = (d.n or 0) + 1
  d.last = what
end

return {
  name = "accept-lua",
  description = "accept, with a small Lua hook at every stage (benchmark)",
  on_connect = function(s, client) touch(s, client.ip) end,
  on_ehlo = function(s, helo) touch(s, helo) end,
  on_mail = function(s, mail) touch(s, mail.domain) end,
  on_rcpt = function(s, rcpt)
    touch(s, rcpt.domain)
    if #rcpt.address > 512 then return emu.reply(550, "5.1.3", "too long") end
  end,
  on_data = function(s, cmd) touch(s, cmd) end,
  on_message = function(s, m) touch(s, m.size) end,
  on_quit = function(s) touch(s, "quit") end,
}
