-- on_command answering with only a line delay: the server's own reply,
-- each line late (the tarpit's way for commands without a stage hook).
return {
  name = "command-slowly",
  description = "every EHLO reply line 0.1 s apart, from on_command",
  on_command = function(s, cmd, p)
    if cmd.verb == "EHLO" then return emu.slowly(0.1) end
  end,
}
