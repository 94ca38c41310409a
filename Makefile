# The README's two commands: `make demo` runs Yolda, `make test` runs every test.
GO ?= go

.PHONY: demo serve test vet build bench-intake

demo: serve

serve:
	$(GO) run ./cmd/yolda serve

build:
	$(GO) build -o bin/yolda ./cmd/yolda

vet:
	$(GO) vet ./...

# Every test, with the race detector. PostgreSQL tests run when
# YOLDA_TEST_POSTGRES_URL is set (.ci/run starts a throwaway cluster and sets
# YOLDA_REQUIRE_SERVICES=1 so that they cannot silently skip). Packages run
# one at a time (-p 1): several of them start brokers, clusters and servers
# and kill them on purpose, and on two cores they would starve each other's
# timeouts.
test: vet
	$(GO) test -race -count=1 -p 1 -timeout 30m ./...
