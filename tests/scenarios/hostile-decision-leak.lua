-- Hostile scenario for tests/integration/test_hostile.py: each RCPT makes
-- 10,000 decisions that carry a reply text and fail the conversion (a bad
-- delay). Finding L1 of tests/fuzz/RESULTS.md: each failure leaks the
-- copied text in C memory, outside the scenario's memory cap.
local text = string.rep("x", 1000)

return {
  name = "hostile-decision-leak",
  description = "invalid decisions with a text, many times (test scenario)",
  on_rcpt = function()
    for _ = 1, 10000 do
      pcall(emu._decision, { kind = "reply", text = text, delay = -1 })
    end
  end,
}
