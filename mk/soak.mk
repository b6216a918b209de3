# make soak: the emulator under a mixed load for SOAK_MINUTES (default 30),
# with its RSS and descriptors watched every minute (tests/soak/soak.py,
# docs/testing-faults.md). Not part of `make check`. The load includes
# Postfix's smtp-source, from `make bench-deps` (Debian's postfix package,
# installed without starting it). Results: tests/soak/RESULTS.md.
#
#   make soak                    30 minutes
#   make soak SOAK_MINUTES=2     a quick one
.PHONY: soak soak-deps

SOAK_MINUTES ?= 30

soak-deps:
	@./tools/deps.sh postfix

soak: deps soak-deps
	$(MAKE) build/smtp-emulator certs
	EMU_BIN=$(CURDIR)/build/smtp-emulator SOAK_MINUTES=$(SOAK_MINUTES) \
	  $(PYTHON) tests/soak/soak.py --out tests/soak/RESULTS.md
