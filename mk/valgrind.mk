# make valgrind: integration tests with the emulator under Valgrind's
# memcheck (not part of `make check`: it is ten to fifty times slower).
# tests/integration/helpers.py wraps the binary when EMU_VALGRIND=1:
#   valgrind --error-exitcode=99 --leak-check=full
#            --errors-for-leak-kinds=definite --track-fds=yes -q
#            --suppressions=tests/valgrind.supp
# and fails a test on any memory error, definite leak or descriptor the
# emulator leaves open at exit; waits are scaled (EMU_SLOW, 20 by default).
# The normal build is used: Valgrind and ASan do not mix.
#
#   make valgrind                          the subset below
#   make valgrind VALGRIND_TESTS=test_tls  other files (substrings of names)
.PHONY: valgrind valgrind-deps

VALGRIND_TESTS ?= test_protocol test_capture test_engine test_api.py \
                  test_faults test_hostile

valgrind-deps:
	@./tools/deps.sh valgrind

valgrind: deps valgrind-deps
	$(MAKE) build/smtp-emulator certs
	EMU_BIN=$(CURDIR)/build/smtp-emulator EMU_VALGRIND=1 \
	  $(PYTHON) tests/integration/run.py -j $(JOBS) $(VALGRIND_TESTS)
