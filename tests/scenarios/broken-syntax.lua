-- A scenario with a syntax error on line 4, for the engine tests.
return {
  name = "broken-syntax",
  description = "does not load" +,
}
