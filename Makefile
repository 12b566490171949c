# vmctl — make help lists the targets.
GO       ?= go
BIN      ?= bin/vmctl
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/vmctl/vmctl/internal/cli.Version=$(VERSION)
export PATH := /usr/local/go/bin:$(PATH)
# go-nvml's header marks calls vmctl never makes as deprecated; keep the build quiet.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: help build test unit lint fuzz bench demo demo-down docker tools clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/vmctl
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vmctl

docker: ## make sure a Docker Engine answers (installs and starts one on Debian)
	@.ci/docker-up

tools: ## make sure moto_server (the independent AWS the tests use) and cfn-lint (CloudFormation's linter) are installed; pip installs them when missing
	@command -v moto_server >/dev/null 2>&1 || { \
		echo "tools: installing moto[server] with pip" >&2; \
		python3 -m pip install --quiet 'moto[server]' 2>/dev/null || \
		python3 -m pip install --quiet --break-system-packages 'moto[server]' || \
		{ echo "tools: moto_server is missing and pip could not install it: run pip install 'moto[server]' (needs python3-pip)"; exit 1; }; }
	@command -v cfn-lint >/dev/null 2>&1 || { \
		echo "tools: installing cfn-lint with pip" >&2; \
		python3 -m pip install --quiet cfn-lint 2>/dev/null || \
		python3 -m pip install --quiet --break-system-packages cfn-lint || \
		{ echo "tools: cfn-lint is missing and pip could not install it: run pip install cfn-lint (needs python3-pip)"; exit 1; }; }

test: docker tools ## what CI runs: lint, then every test against the real Docker Engine (and moto_server)
	@$(MAKE) --no-print-directory lint
	@# -p 1: the packages share one Docker Engine; run one at a time so a
	@# health deadline in one is not spent waiting on another's containers.
	CI=$${CI:-1} $(GO) test -race -count=1 -p 1 -timeout 60m $(PKGS)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=3000x

unit: ## tests that need no Docker Engine (-short: every engine test skips)
	$(GO) test -count=1 -short $(PKGS)

FUZZTIME ?= 1m
fuzz: ## run each fuzz target for FUZZTIME (default 1m; or a count, 3000x) and print the executions it made
	@# -fuzzminimizetime 10x: minimizing each new input for the default 60 s
	@# would spend a short run minimizing instead of fuzzing. make test bounds
	@# the run by a count: a time bound can end inside a worker's input, which go
	@# test then reports as "context deadline exceeded", a failure with no input.
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' cmd internal | xargs -n1 dirname | sort -u); do \
		for fn in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			log=$$(mktemp); start=$$(date +%s); \
			if $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10x ./$$dir >$$log 2>&1; then \
				echo "fuzz $$fn (./$$dir): $$(grep -o 'execs: [0-9]*' $$log | tail -1 | cut -d' ' -f2) executions in $$(( $$(date +%s) - start )) s (-fuzztime $(FUZZTIME)), no failure"; rm -f $$log; \
			else cat $$log; rm -f $$log; echo "fuzz $$fn (./$$dir): failed; the failing input is under ./$$dir/testdata/fuzz/$$fn"; exit 1; fi; \
		done; \
	done

lint: ## gofmt, go vet, and golangci-lint when installed
	@out=$$(gofmt -l cmd internal images); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@if command -v golangci-lint >/dev/null 2>&1; then golangci-lint run; fi

bench: docker build ## vmctl up vs docker compose (newest found): cold, no-op and one-changed, on 5 and 40 services, as ratios
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./internal/engine/

images/demo/vmctl-demo: images/demo/main.go
	CGO_ENABLED=0 $(GO) build -o $@ ./images/demo

demo: docker build images/demo/vmctl-demo ## run the bundled demo stack (compose/demo.yaml) and wait until healthy
	$(BIN) -f compose/demo.yaml up

demo-down: build ## remove the demo stack
	$(BIN) -f compose/demo.yaml down -v

clean: ## remove build outputs
	rm -rf bin images/demo/vmctl-demo
