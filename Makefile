# mamoru: build, demo and test. Every target installs what it needs first.
SHELL := /bin/bash
GO := $(shell .ci/install-deps | tail -n 1)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
DEMO_STATE := $(CURDIR)/demo-state
# The MinIO server the tests and the demo run, built from source once (about
# 3 minutes) and cached.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO := $(HOME)/.cache/mamoru/minio-$(MINIO_VERSION)/minio
export MAMORU_MINIO := $(MINIO)

.PHONY: build demo test bench fuzz clean minio

## build: bin/mamoru for this machine
build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mamoru ./cmd/mamoru

## minio: the MinIO server for tests and the demo
minio: $(MINIO)
$(MINIO):
	@echo "building MinIO $(MINIO_VERSION) once (about 3 minutes)..." >&2
	GOBIN=$(dir $(MINIO)) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

## demo: the recorder on the simulated counter (test pattern, null
## microphone), uploading to a local MinIO
demo: build $(MINIO)
	@mkdir -p $(DEMO_STATE)/minio
	@export MAMORU_S3_ACCESS_KEY=mamoru-demo MAMORU_S3_SECRET_KEY=mamoru-demo-secret MAMORU_DEVICE_STATE_DIR=$(DEMO_STATE); \
	MINIO_ROOT_USER=mamoru-demo MINIO_ROOT_PASSWORD=mamoru-demo-secret MINIO_BROWSER=off \
	  $(MINIO) server --quiet --address 127.0.0.1:9900 $(DEMO_STATE)/minio >$(DEMO_STATE)/minio.log 2>&1 & minio=$$!; \
	trap 'kill $$minio 2>/dev/null; wait $$minio' EXIT; \
	for i in $$(seq 50); do bin/mamoru storage init --config docs/demo.toml >$(DEMO_STATE)/storage-init.log 2>&1 && break; sleep 0.2; done; \
	grep -q '^ok:' $(DEMO_STATE)/storage-init.log || { cat $(DEMO_STATE)/storage-init.log $(DEMO_STATE)/minio.log >&2; exit 1; }; \
	echo "[demo] MinIO at http://127.0.0.1:9900, bucket mamoru-demo (log: $(DEMO_STATE)/minio.log)"; \
	bin/mamoru run --config docs/demo.toml

## test: every test, with the race detector
test: $(MINIO)
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
