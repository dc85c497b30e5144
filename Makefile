# Switchyard. `make demo` runs the story on an embedded server; `make test` runs every test.
GO ?= go
BIN := bin

TOOLS := $(BIN)/tools
TEMPORAL_VERSION := v1.32.1

.PHONY: demo demo-release build build-worker caddy demo-builds test test-short bench crash-matrix soak clean temporal-bins kube-bins oidc-bins

# stripped (-s -w: no symbol table or DWARF; panics still print their stacks)
build:
	$(GO) build -ldflags "-s -w" -o $(BIN)/switchyard ./cmd/switchyard

# for images and production workers: without the embedded Temporal server
# and its Web UI (dev, demo and temporal-server then say so), a third the size
build-worker:
	$(GO) build -tags noserver -ldflags "-s -w" -o $(BIN)/switchyard-worker ./cmd/switchyard

# Caddy with Switchyard's modules, for router kind caddy with
# switchyardModules: true (sticky canaries, mirroring, weights in place)
caddy:
	$(GO) build -ldflags "-s -w" -o $(BIN)/caddy ./cmd/caddy

# three builds of the demo service; v3 is a bad release that fails half its requests
demo-builds:
	$(GO) build -o $(BIN)/demo/v1/demo-app ./cmd/demo-app
	$(GO) build -o $(BIN)/demo/v2/demo-app ./cmd/demo-app
	$(GO) build -ldflags "-X main.errorRate=0.5" -o $(BIN)/demo/v3/demo-app ./cmd/demo-app

demo: build demo-builds
	$(BIN)/switchyard demo

# a backend and a frontend through staging and production as one release
demo-release: build demo-builds
	$(BIN)/switchyard demo release

# The real Temporal server and its SQL tool, at the version this module
# pins, for the PostgreSQL-backed tests (they skip, saying so, without them).
# Built once into bin/tools (not committed: ~270 MB).
temporal-bins: $(TOOLS)/server $(TOOLS)/sql

$(TOOLS)/server $(TOOLS)/sql:
	GOBIN=$(CURDIR)/$(TOOLS) $(GO) install go.temporal.io/server/cmd/server@$(TEMPORAL_VERSION) go.temporal.io/server/cmd/tools/sql@$(TEMPORAL_VERSION)

# A real OpenID Connect provider for the dashboard's sign-in tests: the
# zitadel/oidc library's example OP, at a pinned version (bin/tools/oidc, not committed)
OIDC_VERSION := v3.52.0
oidc-bins: $(TOOLS)/oidc/server

$(TOOLS)/oidc/server:
	GOBIN=$(CURDIR)/$(TOOLS)/oidc $(GO) install github.com/zitadel/oidc/v3/example/server@$(OIDC_VERSION)

# kube-apiserver at a pinned version, for the kubernetes tests (bin/tools, not committed)
kube-bins:
	./hack/kube-bins.sh

test:
	$(GO) test -count=1 -timeout 45m ./...

test-short:
	$(GO) test -count=1 -short ./...

# every case of the kill matrix (make test runs a random third of it)
crash-matrix:
	$(GO) test -count=1 -run 'TestKillMatrix' -v -timeout 60m ./test/ -crash-matrix

# 1,000,000 requests per router (HAProxy, embedded Caddy) at 1,000 req/s, kept-alive
# and new-connection clients, across 300+ weight changes; make test runs a minute each
soak:
	$(GO) test -count=1 -run 'TestSoak' -v -timeout 120m ./test/ -soak

bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/

clean:
	rm -rf $(BIN) .switchyard
