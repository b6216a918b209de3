# make bench: the performance comparison of issue 8 (not part of check).
# Needs Postfix's smtp-sink and smtp-source (Debian's postfix package,
# installed without starting its daemon) and Node for the TLS peer.
.PHONY: bench bench-deps
BENCH_ROUNDS ?= 5
bench-deps:
	@./tools/deps.sh postfix util-linux redis-server
	@command -v node >/dev/null 2>&1 || ./tools/deps.sh nodejs
	@command -v npm >/dev/null 2>&1 || ./tools/deps.sh npm
	@cd bench && (npm ci --no-audit --no-fund >/dev/null 2>&1 || npm install --no-audit --no-fund >/dev/null)
bench: deps bench-deps
	$(MAKE) build/smtp-emulator certs
	$(PYTHON) bench/bench.py --rounds $(BENCH_ROUNDS) --out bench/RESULTS.md
	@echo "bench: results in bench/RESULTS.md"
