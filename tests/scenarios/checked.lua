-- A scenario whose check(p) refuses some parameter combinations: the
-- engine runs it whenever parameters are set, under the load budget.
return {
  name = "checked",
  description = "refuses low > high; loops when asked to",
  params = {
    low = { default = 1, help = "lower bound" },
    high = { default = 10, help = "upper bound" },
    spin = { default = false, help = "make check() loop forever" },
  },
  check = function(p)
    if p.spin then
      while true do end
    end
    if p.low > p.high then
      return ("low (%d) is above high (%d)"):format(p.low, p.high)
    end
  end,
  on_rcpt = function(s, rcpt, p)
    return emu.reply(250, "2.1.5", ("Ok %d-%d"):format(p.low, p.high))
  end,
}
