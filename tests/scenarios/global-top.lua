-- Sets a global at load time: must be refused with file and line.
counter = 0
return { name = "global-top", description = "bad" }
