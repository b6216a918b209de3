-- Loops forever at load time: the instruction budget must stop it.
while true do end
return { name = "loop-top", description = "bad" }
