# The README's two commands: `go run ./cmd/yolda serve` runs Yolda, `make test`
# runs every test. `make check` is the fast loop while editing.
GO ?= go

.PHONY: demo serve build vet check test screenshots web-assets

demo: serve

serve:
	$(GO) run ./cmd/yolda serve

# bin/yolda, stamped with its module version and VCS revision (yolda version).
build:
	$(GO) build -buildvcs=true -o bin/yolda ./cmd/yolda

vet:
	$(GO) vet ./...

# Fast feedback, under a minute: vet, then the unit and conformance tests on
# SQLite, without the race detector, leaving out the packages that run
# whole processes (internal/app starts the binary, kills it and restarts it;
# internal/relay runs brokers and kills them; web/e2e drives a browser
# against the binary). make test runs everything.
CHECK_PKGS = $(shell $(GO) list ./... | grep -v -e '/internal/app$$' -e '/internal/relay$$' -e '/web/e2e$$')
check: vet
	@echo "go test -count=1 (every package but internal/app, internal/relay and web/e2e, on SQLite)"
	@YOLDA_TEST_POSTGRES_URL= YOLDA_REQUIRE_SERVICES= $(GO) test -count=1 $(CHECK_PKGS)

# Every test, with the race detector. PostgreSQL tests run when
# YOLDA_TEST_POSTGRES_URL is set (.ci/run starts a throwaway cluster and sets
# YOLDA_REQUIRE_SERVICES=1 so that they cannot silently skip). Packages run
# one at a time (-p 1): several of them start brokers, clusters and servers
# and kill them on purpose, and on two cores they would starve each other's
# timeouts.
test: vet
	$(GO) test -race -count=1 -p 1 -timeout 30m ./...
	@if [ -z "$$YOLDA_TEST_POSTGRES_URL" ]; then \
		echo "SKIP: set YOLDA_TEST_POSTGRES_URL to run the PostgreSQL suites (scripts/postgres-test-cluster.sh start DIR prints one)"; \
	fi

# The README's screenshots: the browser tests (web/e2e, Chromium headless)
# write one PNG per main screen into docs/screenshots.
screenshots:
	YOLDA_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run . ./web/e2e

# Refresh the vendored map library and regenerate the offline basemap
# (needs Node and npm; the output is committed, so nothing else does).
web-assets:
	bash web/build/build.sh
