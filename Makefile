# saker — see README.md. Every target works on a fresh machine: test peers and tools are
# installed on demand by .ci/install-peers.sh into $(SAKER_PEERS).
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
SAKER_PEERS ?= /tmp/saker-peers
export SAKER_PEERS
GO ?= go
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test test-short bench pgo chaos lint fuzz e2e chart-test peers docs clean

build: ## build bin/saker
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/saker ./cmd/saker

run: build ## build and start saker with the embedded defaults (:2801, stdout output)
	./bin/saker $(ARGS)

peers: ## install the real servers the tests talk to
	.ci/install-peers.sh

# Tests build without cmd/saker/default.pgo (-pgo=off): applied to cmd/saker's test binary it
# would compile every dependency a second time, with the profile and the race detector.
test: peers build ## every test, with the race detector
	$(GO) test -pgo=off -race -timeout 20m ./...

test-short: build ## every test that needs no real server (no peers installed; tests needing one skip and say which)
	$(GO) test -pgo=off -short -race ./...

bench: peers build ## benchmarks and load tests, with the reference measured in the same run
	$(GO) test -run '^$$' -bench . -skip BenchmarkQueries -benchmem -benchtime 2s ./engine/... ./outputs/...
	$(GO) test -run '^$$' -bench Queries -benchtime 5x -timeout 20m ./engine/store
	$(GO) run ./internal/loadbench -saker bin/saker

PGO_DIR ?= /tmp/saker-pgo
pgo: peers build ## regenerate cmd/saker/default.pgo, the CPU profile the compiler optimizes bin/saker with: the ingest load of make bench, then audit rules (replay)
	rm -rf $(PGO_DIR) && mkdir -p $(PGO_DIR)
	$(GO) run ./internal/loadbench -saker bin/saker -cpuprofile $(PGO_DIR)/ingest.pprof
	./bin/saker replay --cpuprofile $(PGO_DIR)/rules.pprof $$(for i in $$(seq 400); do echo testdata/k8s-audit/traces/*.json; done) >/dev/null
	$(GO) tool pprof -proto $(PGO_DIR)/ingest.pprof $(PGO_DIR)/rules.pprof > cmd/saker/default.pgo

chaos: peers build ## the chaos suite in its long form (issue 9: outages, kill -9, full spool, NATS restart); prints the table of docs/reliability.md
	set -o pipefail; SAKER_BIN=$(CURDIR)/bin/saker SAKER_CHAOS=long $(GO) test -count=1 -v -timeout 30m ./internal/chaos | grep -E '^\s*(chaos_test.go:[0-9]+: RESULT|--- |ok|FAIL|panic)'

FUZZTIME ?= 20s
fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	set -e; grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u | while read -r pkg; do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go | cut -d' ' -f2); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -pgo=off -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; done; done

lint: peers ## go vet, staticcheck, and go.mod/go.sum as go mod tidy leaves them
	$(GO) vet ./...
	$(SAKER_PEERS)/staticcheck ./...
	$(GO) mod tidy -diff

chart-test: peers ## the Helm chart: lint, render, dry run on a real kube-apiserver, promtool, dashboard on a real Prometheus, docs/k3s.md (also part of make test)
	$(GO) test -race -count=1 -v ./charts/...

e2e: peers build ## the real kube-apiserver audit webhook scenario (builds kube-apiserver once, ~5 min)
	.ci/e2e.sh

docs: build ## regenerate docs/configuration-reference.md from the code
	./bin/saker config docs > docs/configuration-reference.md

clean:
	rm -rf bin
