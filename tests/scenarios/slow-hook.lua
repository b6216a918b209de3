-- A hook that keeps the CPU busy for `busy` seconds at MAIL (within the
-- instruction budget the test gives): the idle timeout must count from
-- the reply, not from the command before the hook ran.
return {
  name = "slow-hook",
  description = "MAIL's hook spins for `busy` seconds",
  params = { busy = { default = 1.3, help = "seconds of CPU at MAIL" } },
  on_mail = function(s, mail, p)
    local t = emu.now()
    while emu.now() - t < p.busy do end
    return nil
  end,
}
