# mamoru: build, demo and test. Every target installs what it needs first.
SHELL := /bin/bash
GO := $(shell .ci/install-deps | tail -n 1)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
DEMO_STATE := $(CURDIR)/demo-state

.PHONY: build demo test bench fuzz clean

## build: bin/mamoru for this machine
build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mamoru ./cmd/mamoru

## demo: the recorder on the simulated counter (test pattern, null microphone)
demo: build
	@mkdir -p $(DEMO_STATE)
	MAMORU_DEVICE_STATE_DIR=$(DEMO_STATE) bin/mamoru run --config docs/demo.toml

## test: every test, with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

## bench: the benchmarks (see bench/README.md)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bench/run

## fuzz: run each fuzzer for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./policy
	$(GO) test -run '^$$' -fuzz FuzzParser -fuzztime $(FUZZTIME) ./capture/h264
	$(GO) test -run '^$$' -fuzz FuzzParseSPS -fuzztime $(FUZZTIME) ./capture/h264
	$(GO) test -run '^$$' -fuzz FuzzRecover -fuzztime $(FUZZTIME) ./capture/mp4

clean:
	rm -rf bin $(DEMO_STATE)
