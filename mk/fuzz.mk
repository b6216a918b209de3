# mk/fuzz.mk: the libFuzzer targets in tests/fuzz/ (STYLE.md part 4,
# docs/testing.md).
#
#   make fuzz            build with clang -fsanitize=fuzzer,address,undefined
#                        and run each target FUZZ_TIME seconds (default 60);
#                        `make -j2 fuzz` runs two at a time. New inputs go to
#                        build/fuzz/corpus/<target>/, crashes to
#                        build/fuzz/artifacts/<target>/.
#   make fuzz-replay     replay every tests/fuzz/corpus/<target>/ through the
#                        target linked with tests/fuzz/replay_main.c, in the
#                        ASan/UBSan build (gcc; no libFuzzer). Part of
#                        `make check`.
#   make fuzz-merge      fold the new inputs of build/fuzz/corpus/<target>/
#                        that add coverage into tests/fuzz/corpus/<target>/.
#   make fuzz-known      replay tests/fuzz/known/<target>/: reproducers of
#                        reported bugs outside the pure modules that are not
#                        fixed yet. Fails until they are; then move the files
#                        into corpus/ and drop their lines from lsan.supp and
#                        ubsan.supp.
#
# FUZZ_TARGETS="proxy sasl" narrows any of these to some targets.

FUZZ_ALL     := smtp_parse data_reader address proxy sasl config reply json \
                lua_bridge
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_TIME    ?= 60
FUZZ_NICE    ?= nice -n 10
FUZZ_ARGS    ?=
# Per target: the Lua bridge runs a few hundred inputs a second, too few
# for libFuzzer's slow growth of input length to reach real programs.
FUZZ_ARGS_lua_bridge := -len_control=0 -max_len=2048
# -fsanitize=fuzzer-no-link instruments the server's objects for coverage;
# only the final link pulls in libFuzzer's main.
# UBSan errors are recoverable in this build only so that ubsan.supp can
# apply; halt_on_error=1 still stops the run on any other one.
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined \
                -fsanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_LINK    := -fsanitize=fuzzer,address,undefined
# Findings already reported but not fixed yet (see the files).
FUZZ_ENV     := LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp \
                UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(CURDIR)/tests/fuzz/ubsan.supp

.PHONY: fuzz fuzz-build fuzz-replay fuzz-replay-build fuzz-merge fuzz-deps \
        fuzz-known

# build/fuzz/obj/*.o: the emulator's sources instrumented for libFuzzer.
$(eval $(call variant,build/fuzz,clang,$(FUZZ_SAN)))

# What a target links besides its own file: the pure modules (jansson is
# api_body's), except the Lua bridge (the whole server but main.o, like
# tests/test_script).
fuzz_objs = $(if $(filter lua_bridge,$(2)),$(filter-out $(1)/obj/main.o,$(patsubst emulator/%.c,$(1)/obj/%.o,$(SRCS))),$(patsubst %,$(1)/obj/%.o,$(PURE)))
fuzz_libs = $(if $(filter lua_bridge,$(1)),$(PKG_LIBS),-ljansson -lm)

# $(1) target, $(2) variant dir, $(3) compiler, $(4) flags, $(5) main
define fuzz_rule
$(2)/fuzz/fuzz_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/fuzz.h $(5) $(call fuzz_objs,$(2),$(1))
	@mkdir -p $$(@D)
	$$(Q)$(3) $$(BASEFLAGS) $(4) $$(PKG_CFLAGS) -Iemulator -Itests/fuzz \
	  -DFUZZ_SRC_DIR=\"$$(CURDIR)\" -o $$@ $$(filter %.c %.o,$$^) \
	  $(call fuzz_libs,$(1))
endef

$(foreach t,$(FUZZ_ALL),$(eval $(call fuzz_rule,$(t),build/fuzz,clang,$(FUZZ_LINK) $(FUZZ_SAN),)))
$(foreach t,$(FUZZ_ALL),$(eval $(call fuzz_rule,$(t),build/asan,$(CC),$(ASAN),tests/fuzz/replay_main.c)))
-include $(wildcard build/fuzz/fuzz/*.d build/asan/fuzz/*.d)

fuzz-deps:
	@./tools/deps.sh clang libclang-rt-14-dev

fuzz-build: fuzz-deps
	$(MAKE) $(patsubst %,build/fuzz/fuzz/fuzz_%,$(FUZZ_TARGETS))

# One run per target, so `make -j2 fuzz` fuzzes two at a time.
fuzz: $(patsubst %,fuzz-run-%,$(FUZZ_TARGETS))
	@echo "fuzz: $(FUZZ_TARGETS): $(FUZZ_TIME) s each, no crash"

fuzz-run-%: fuzz-build
	@mkdir -p build/fuzz/corpus/$* build/fuzz/artifacts/$*
	@echo "== fuzz_$* for $(FUZZ_TIME) s"
	$(FUZZ_ENV) $(FUZZ_NICE) build/fuzz/fuzz/fuzz_$* -max_total_time=$(FUZZ_TIME) \
	  -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	  -artifact_prefix=build/fuzz/artifacts/$*/ \
	  $(if $(wildcard tests/fuzz/$*.dict),-dict=tests/fuzz/$*.dict) \
	  $(FUZZ_ARGS_$*) $(FUZZ_ARGS) build/fuzz/corpus/$* tests/fuzz/corpus/$*

fuzz-merge: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  build/fuzz/fuzz/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t \
	    build/fuzz/corpus/$$t || exit 1; done

fuzz-replay-build: $(patsubst %,build/asan/fuzz/fuzz_%,$(FUZZ_TARGETS))

fuzz-replay: fuzz-replay-build
	@for t in $(FUZZ_TARGETS); do \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    build/asan/fuzz/fuzz_$$t tests/fuzz/corpus/$$t || exit 1; done

# The clang build, without the suppressions (gcc's UBSan does not check
# float casts).
fuzz-known: fuzz-build
	@rc=0; for t in $(FUZZ_TARGETS); do \
	  for f in $(CURDIR)/tests/fuzz/known/$$t/*; do [ -f "$$f" ] || continue; \
	    if UBSAN_OPTIONS=halt_on_error=1 build/fuzz/fuzz/fuzz_$$t "$$f" \
	        >/dev/null 2>&1; then echo "fixed:   $$t/$${f##*/}"; \
	    else echo "failing: $$t/$${f##*/}"; rc=1; fi; done; done; exit $$rc

CHECK_EXTRA += fuzz-replay
