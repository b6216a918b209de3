# The web page (web/) and its browser tests: Debian's Chromium, headless,
# driven by playwright-core from npm (tests/browser). Nothing downloads a
# browser build. `make check` runs them through CHECK_EXTRA.
#
#   make browser-test     install what is missing, build, run the tests
#   make web-screenshot   the same, saving docs/web-screenshot.png

BROWSER_DIR    := tests/browser
BROWSER_DEBS   := chromium fonts-dejavu-core
WEB_SCREENSHOT ?= $(CURDIR)/build/browser/web-screenshot.png

.PHONY: browser-deps browser-test web-screenshot

# Chromium and a font from Debian; node and npm when absent (Debian 12's
# nodejs is enough); then the locked npm packages, again only when the
# lock file changed.
browser-deps:
	@./tools/deps.sh $(BROWSER_DEBS)
	@command -v node >/dev/null 2>&1 || ./tools/deps.sh nodejs npm
	@command -v npm >/dev/null 2>&1 || ./tools/deps.sh npm
	@$(MAKE) --no-print-directory $(BROWSER_DIR)/node_modules/.package-lock.json

$(BROWSER_DIR)/node_modules/.package-lock.json: $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	cd $(BROWSER_DIR) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	@touch $@

browser-test: browser-deps
	$(MAKE) build/smtp-emulator certs
	cd $(BROWSER_DIR) && EMU_BIN=$(CURDIR)/build/smtp-emulator \
	  CHROMIUM=/usr/bin/chromium WEB_SCREENSHOT=$(WEB_SCREENSHOT) \
	  node --test web.test.mjs

web-screenshot:
	$(MAKE) browser-test WEB_SCREENSHOT=$(CURDIR)/docs/web-screenshot.png

CHECK_EXTRA += browser-test
