# smtp-emulator: build, test and run. `make run` and `make check` work on a
# fresh Debian 12 machine as root: both start with `make deps`.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
CC        ?= gcc
PKGS      := libevent libevent_openssl openssl lua5.4 jansson hiredis
PYTHON    := /usr/bin/python3
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)

WARN      := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
             -Wmissing-prototypes -Wvla -Wimplicit-fallthrough -Wnull-dereference
BASEFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g \
             $(WARN) -DEMU_VERSION=\"$(VERSION)\" -DEMU_PREFIX=\"$(PREFIX)\" \
             -MMD -MP
ifeq ($(WERROR),1)
BASEFLAGS += -Werror
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
# V=1 shows every compiler command.
Q         := $(if $(filter 1,$(V)),,@)
ASAN      := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer

SRCS      := $(wildcard emulator/*.c)
# Pure modules: they link into unit tests and fuzzers with no libevent,
# OpenSSL or Lua (STYLE.md part 2).
PURE      := util cidr base64 smtp_parse data_reader reply decision proxy \
             sasl config kv api_body
UNIT      := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

.PHONY: all run check deps build-gcc build-clang asan unit unit-asan \
        integration integration-asan lint format format-check install \
        certs clean help

all: build/smtp-emulator certs

help:
	@echo "make            build build/smtp-emulator (and test certificates)"
	@echo "make run        install build packages, build, run on 127.0.0.1:2525"
	@echo "make check      install packages, build (gcc, clang, ASan), run every test"
	@echo "make install PREFIX=/usr/local"

# ---- dependencies -------------------------------------------------------
DEB_BUILD := gcc make pkg-config libevent-dev libssl-dev liblua5.4-dev \
             libjansson-dev libhiredis-dev libcmocka-dev clang clang-format-14 \
             openssl
DEB_TEST  := python3 swaks curl openssl procps redis-server iproute2
deps:
	@./tools/deps.sh $(DEB_BUILD) $(DEB_TEST)

# ---- build variants -----------------------------------------------------
# $(1) output dir, $(2) compiler, $(3) extra flags
define variant
$(1)/obj/%.o: emulator/%.c
	@mkdir -p $$(@D)
	$$(Q)$(2) $$(BASEFLAGS) $(3) $$(PKG_CFLAGS) -c $$< -o $$@
$(1)/tobj/%.o: emulator/%.c
	@mkdir -p $$(@D)
	$$(Q)$(2) $$(BASEFLAGS) $(3) -DEMU_ALLOC_FAULTS -c $$< -o $$@
$(1)/smtp-emulator: $(patsubst emulator/%.c,$(1)/obj/%.o,$(SRCS))
	$$(Q)$(2) $(3) -o $$@ $$^ $$(PKG_LIBS)
	@echo "built $$@"
$(1)/tests/test_%: tests/unit/test_%.c $(patsubst %,$(1)/tobj/%.o,$(PURE))
	@mkdir -p $$(@D)
	$$(Q)$(2) $$(BASEFLAGS) $(3) -Iemulator -DEMU_ALLOC_FAULTS -o $$@ $$^ -lcmocka -ljansson -lm
# The scenario engine's test links the whole server but main.c.
$(1)/tests/test_script: tests/unit/test_script.c $(filter-out $(1)/obj/main.o,$(patsubst emulator/%.c,$(1)/obj/%.o,$(SRCS)))
	@mkdir -p $$(@D)
	$$(Q)$(2) $$(BASEFLAGS) $(3) $$(PKG_CFLAGS) -Iemulator -o $$@ $$^ -lcmocka $$(PKG_LIBS)
-include $(wildcard $(1)/obj/*.d $(1)/tobj/*.d $(1)/tests/*.d)
endef

$(eval $(call variant,build,$(CC),))
$(eval $(call variant,build/clang,clang,))
$(eval $(call variant,build/asan,$(CC),$(ASAN)))

build-gcc:
	$(MAKE) WERROR=1 build/smtp-emulator
build-clang:
	$(MAKE) WERROR=1 build/clang/smtp-emulator
asan:
	$(MAKE) WERROR=1 build/asan/smtp-emulator

certs: certs/server.pem
certs/server.pem: certs/gen.sh
	./certs/gen.sh

# ---- running ------------------------------------------------------------
run: deps
	$(MAKE) all
	./build/smtp-emulator --listen 127.0.0.1:2525 --api 127.0.0.1:8025 $(RUN_ARGS)

# ---- tests --------------------------------------------------------------
unit: $(patsubst %,build/tests/%,$(UNIT))
	@for t in $^; do echo "== $$t"; $$t || exit 1; done
unit-asan: $(patsubst %,build/asan/tests/%,$(UNIT))
	@for t in $^; do echo "== $$t (asan)"; \
	  ASAN_OPTIONS=detect_leaks=1 $$t || exit 1; done

integration: build/smtp-emulator certs
	EMU_BIN=$(CURDIR)/build/smtp-emulator $(PYTHON) tests/integration/run.py -j $(JOBS)
integration-asan: build/asan/smtp-emulator certs
	EMU_BIN=$(CURDIR)/build/asan/smtp-emulator EMU_ASAN=1 \
	  $(PYTHON) tests/integration/run.py -j $(JOBS)

lint:
	@bad=$$(grep -l '#include <event2/' emulator/*.c emulator/*.h | \
	  grep -v -E '^emulator/net(_[a-z]+)?(_int)?\.[ch]$$' || true); \
	if [ -n "$$bad" ]; then \
	  echo "lint: only the net module may include libevent headers:"; \
	  echo "$$bad"; exit 1; fi
	@for m in $(PURE); do \
	  if grep -q -E '#include <(event2|openssl|lua)' emulator/$$m.c emulator/$$m.h; then \
	    echo "lint: pure module $$m includes an I/O library"; exit 1; fi; done
	@echo "lint: ok"

FORMAT_FILES = $(wildcard emulator/*.c emulator/*.h tests/unit/*.c tests/fuzz/*.c)
format:
	clang-format-14 -i $(FORMAT_FILES)
format-check:
	clang-format-14 --dry-run --Werror $(FORMAT_FILES)
	@echo "format-check: ok"

# Fragments in mk/ add their own targets, and may append to CHECK_EXTRA
# (run by `make check` after the core tests) and DEB_TEST (packages).
CHECK_EXTRA :=
-include $(sort $(wildcard mk/*.mk))

check: deps
	$(MAKE) build-gcc certs
	$(MAKE) build-clang
	$(MAKE) lint format-check
	$(MAKE) WERROR=1 unit
	$(MAKE) WERROR=1 integration
	$(MAKE) asan
	$(MAKE) WERROR=1 unit-asan
	$(MAKE) WERROR=1 integration-asan
	$(if $(CHECK_EXTRA),$(MAKE) WERROR=1 $(CHECK_EXTRA))
	@echo "make check: all passed"

# ---- install ------------------------------------------------------------
install: build/smtp-emulator
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/smtp-emulator
	install -m 0755 build/smtp-emulator $(DESTDIR)$(PREFIX)/bin/smtp-emulator
	cp -R scenarios lua $(DESTDIR)$(PREFIX)/share/smtp-emulator/
	if [ -d web ]; then cp -R web $(DESTDIR)$(PREFIX)/share/smtp-emulator/; fi
	install -d $(DESTDIR)$(PREFIX)/share/smtp-emulator/certs
	install -m 0755 certs/gen.sh $(DESTDIR)$(PREFIX)/share/smtp-emulator/certs/gen.sh
	install -m 0644 certs/README.md $(DESTDIR)$(PREFIX)/share/smtp-emulator/certs/README.md

clean:
	rm -rf build
