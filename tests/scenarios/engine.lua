-- Exercises the engine from the integration tests: every decision kind,
-- hook arguments, per-session data, EHLO/banner overrides, and the error
-- paths (runtime error, endless loop, memory bomb, bad return values).
-- The recipient's local part picks the behaviour.
return {
  name = "engine",
  description = "engine test scenario",
  params = {
    greeting = { default = "", help = "banner override when not empty" },
    count = { default = 1, type = "integer", help = "a number" },
    names = { default = { "a", "b" }, type = "list", help = "a list" },
  },
  on_connect = function(s, client, p)
    s.data.connected = client.ip
    if p.greeting ~= "" then s:banner(p.greeting) end
  end,
  on_ehlo = function(s, helo, p)
    s.data.helo = helo
    if helo == "custom.example" then
      s:ehlo_keywords({ "PIPELINING", "SIZE 1000", "8BITMIME" })
    end
    if helo == "refuse.example" then
      return emu.reply(550, "5.7.1", "<" .. helo .. ">: Helo command rejected: Access denied")
    end
  end,
  on_mail = function(s, mail, p)
    if mail.address == "delay@example.com" then
      return emu.delay(1)
    end
    if mail.address == "slowreject@example.com" then
      return emu.reply(451, "4.3.0", "later"):after(0.5)
    end
  end,
  on_rcpt = function(s, rcpt, p)
    local l = rcpt.local_part
    if l == "ok" then return nil end
    if l == "multi" then
      return emu.reply(550, "5.7.26", { "first line", "second line", " last line" })
    end
    if l == "raw" then return "553 5.1.2 raw string reply" end
    if l == "close" then return emu.reply(421, "4.7.0", "closing now") end
    if l == "replyclose" then return emu.reply(550, "5.7.1", "no"):close() end
    if l == "drop" then return emu.drop() end
    if l == "reset" then return emu.reset() end
    if l == "hang" then return emu.hang(2) end
    if l == "partial" then return emu.partial("250-partial") end
    if l == "error" then error("boom in on_rcpt") end
    if l == "loop" then while true do end end
    if l == "pcallloop" then
      for i = 1, 100 do pcall(function() while true do end end) end
      return nil
    end
    if l == "bomb" then
      local t = {}
      for i = 1, 1e9 do t[i] = string.rep("x", 1024) .. i end
    end
    if l == "badreturn" then return 42 end
    if l == "global" then leaked = true end
    if l == "badreply" then return emu.reply(99, "x", "bad") end
    if l == "data" then
      return emu.reply(250, "2.1.5", "seen " .. s.data.connected .. " " .. s.data.helo)
    end
    if l == "params" then
      return emu.reply(250, "2.1.5", ("count=%d names=%s"):format(p.count, table.concat(p.names, "+")))
    end
    if l == "state" then
      local n = emu.state.incr("hits")
      return emu.reply(250, "2.1.5", "hits=" .. math.floor(n))
    end
    if l == "view" then
      return emu.reply(250, "2.1.5", ("%s %s %s %d"):format(s.client_ip, s.mail_from, s.helo, #s.rcpts))
    end
    if l == "stale" then
      -- keep the session object past its life: the next session's use errors
      return nil
    end
    return nil
  end,
  on_message = function(s, m, p)
    if m:header("Subject") == "refuse" then
      return emu.reply(554, "5.7.1", "refused: " .. m.size .. " bytes, to " .. m.rcpts[1])
    end
  end,
  on_disconnect = function(s, outcome, p)
    s:log("outcome=" .. outcome.outcome .. " code=" .. tostring(outcome.code) .. " stage=" .. tostring(outcome.stage))
  end,
}
