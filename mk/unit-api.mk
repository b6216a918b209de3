# tests/unit/test_api.c: the control API's token check. api.c is not a
# pure module, so, like test_script, the test links the whole server but
# main.c. These explicit rules take precedence over the Makefile's pattern
# rule for build/.../tests/test_% (which links the pure modules only);
# `make unit` and `make unit-asan` pick the test up by its file name.

# $(1) output dir, $(2) compiler, $(3) extra flags
define unit_api_rule
$(1)/tests/test_api: tests/unit/test_api.c $(filter-out $(1)/obj/main.o,$(patsubst emulator/%.c,$(1)/obj/%.o,$(SRCS)))
	@mkdir -p $$(@D)
	$$(Q)$(2) $$(BASEFLAGS) $(3) $$(PKG_CFLAGS) -Iemulator -o $$@ $$^ -lcmocka $$(PKG_LIBS)
endef

$(eval $(call unit_api_rule,build,$(CC),))
$(eval $(call unit_api_rule,build/clang,clang,))
$(eval $(call unit_api_rule,build/asan,$(CC),$(ASAN)))
