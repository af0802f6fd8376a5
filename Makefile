# mamoru: build, demo and test. Every target installs what it needs first.
SHELL := /bin/bash
GO := $(shell .ci/install-deps | tail -n 1)
# Tests run go too (the package test builds the binary): the same one.
export PATH := $(dir $(GO)):$(PATH)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Position-independent, as Debian builds its binaries.
BUILDFLAGS := -trimpath -buildmode=pie
DEMO_STATE := $(CURDIR)/demo-state
# The MinIO server the tests and the demo run, built from source once (about
# 3 minutes) and cached.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO := $(HOME)/.cache/mamoru/minio-$(MINIO_VERSION)/minio
export MAMORU_MINIO := $(MINIO)
# versitygw, the second S3 server the write-once tests run (it has no
# lifecycle and no per-user policies: README says what each server
# enforces), built from the Go module proxy once and cached.
VERSITYGW_VERSION := v1.8.0
VERSITYGW := $(HOME)/.cache/mamoru/versitygw-$(VERSITYGW_VERSION)/versitygw
export MAMORU_VERSITYGW := $(VERSITYGW)
# mailpit, the SMTP server the e-mail alert tests send to (and read back
# through its API), built from the Go module proxy once and cached.
MAILPIT_VERSION := v1.33.1
MAILPIT := $(HOME)/.cache/mamoru/mailpit-$(MAILPIT_VERSION)/mailpit
export MAMORU_MAILPIT := $(MAILPIT)

.PHONY: sync-long soak powercut image flash install deb build build-console build-arm64 build-armv7 test-arm64 test-armv7 cross demo test bench fuzz clean minio versitygw mailpit

# Cross-building for the Pi: cgo (miniaudio) with Debian's cross compilers.
ARM64_ENV := CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc
ARMV7_ENV := CGO_ENABLED=1 GOOS=linux GOARCH=arm GOARM=7 CC=arm-linux-gnueabihf-gcc CGO_LDFLAGS=-latomic
ARM64_EXEC := qemu-aarch64-static -L /usr/aarch64-linux-gnu
ARMV7_EXEC := qemu-arm-static -L /usr/arm-linux-gnueabihf

## build: bin/mamoru for this machine
build:
	CGO_ENABLED=1 $(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o bin/mamoru ./cmd/mamoru

## build-arm64, build-armv7: bin/mamoru-arm64 (Pi 4, Pi 5, Zero 2 W on a
## 64-bit OS) and bin/mamoru-armv7 (a 32-bit OS)
build-arm64: cross
	$(ARM64_ENV) $(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o bin/mamoru-arm64 ./cmd/mamoru
build-armv7: cross
	$(ARMV7_ENV) $(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o bin/mamoru-armv7 ./cmd/mamoru
cross:
	@.ci/install-cross

## build-console: the managers' console (the whole mamoru, without cgo, so
## without a microphone) for the managers' computers, one file each:
## bin/console/mamoru-console-<os>-<arch>[.exe], and their SHA256SUMS
CONSOLE_TARGETS := windows/amd64 darwin/arm64 darwin/amd64 linux/amd64 linux/arm64
build-console:
	@mkdir -p bin/console
	@for t in $(CONSOLE_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		out=bin/console/mamoru-console-$$os-$$arch$$ext; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o $$out ./cmd/mamoru || exit 1; \
		echo "$$out"; \
	done
	@cd bin/console && sha256sum mamoru-console-* > SHA256SUMS && echo bin/console/SHA256SUMS

## test-arm64, test-armv7: the tests, cross-built, under qemu-user (there
## is no binfmt here, hence -exec; audio is the null backend)
test-arm64: cross $(MINIO) $(VERSITYGW) $(MAILPIT)
	$(ARM64_ENV) MAMORU_TEST_EXEC='$(ARM64_EXEC)' $(GO) test -count=1 -timeout 20m -exec '$(ARM64_EXEC)' ./...
test-armv7: cross $(MINIO) $(VERSITYGW) $(MAILPIT)
	$(ARMV7_ENV) MAMORU_TEST_EXEC='$(ARMV7_EXEC)' $(GO) test -count=1 -timeout 20m -exec '$(ARMV7_EXEC)' ./...

## deb: bin/mamoru_<version>_<ARCH>.deb, ARCH=arm64 (default), armhf or amd64
ARCH ?= arm64
DEB_VERSION := $(shell git log -1 --format=0~%cd.%h --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0~dev)
deb:
	@case "$(ARCH)" in arm64) $(MAKE) --no-print-directory build-arm64 && bin=bin/mamoru-arm64;; \
	  armhf) $(MAKE) --no-print-directory build-armv7 && bin=bin/mamoru-armv7;; \
	  amd64) $(MAKE) --no-print-directory build && bin=bin/mamoru;; \
	  *) echo "make deb: ARCH must be arm64, armhf or amd64 (got $(ARCH))" >&2; exit 2;; esac; \
	cmd/mamoru/debian/build-deb $(ARCH) $$bin $(DEB_VERSION) bin/mamoru_$(DEB_VERSION)_$(ARCH).deb

## image: OUT, a copy of the Raspberry Pi OS image BASE (.img or .img.xz)
## whose boot partition holds the package, the site's CONFIG with the key
## files left beside it (storage keys, alert targets' secrets and CAs, each
## under the base name of its configured path) and a first-boot script that
## installs them and makes the device's signing key on the device
image:
	@[ -n "$(BASE)" ] && [ -n "$(CONFIG)" ] && [ -n "$(OUT)" ] || { echo "usage: make image BASE=raspios-lite.img[.xz] CONFIG=site.toml OUT=card.img [ARCH=arm64]" >&2; exit 2; }
	@$(MAKE) --no-print-directory build deb ARCH=$(ARCH)
	@# The configuration must be valid with the key files beside it, as
	@# they go on the card; the signing key is made on the device.
	bin/mamoru check --no-probe --key-dir "$$(dirname -- "$(CONFIG)")" --config "$(CONFIG)"
	cmd/mamoru/installer/image.sh "$(BASE)" "$(CONFIG)" bin/mamoru_$(DEB_VERSION)_$(ARCH).deb "$(OUT)" bin/mamoru

## flash: write IMG to the SD card DEVICE and verify it; refuses a mounted,
## fixed or over-256 GB device unless FORCE=1
flash:
	@[ -n "$(IMG)" ] && [ -n "$(DEVICE)" ] || { echo "usage: make flash IMG=card.img DEVICE=/dev/sdX [FORCE=1]" >&2; exit 2; }
	FORCE=$(FORCE) cmd/mamoru/installer/flash.sh $(IMG) $(DEVICE)

## install: build for the Pi at HOST (over ssh), install, restart, self-test;
## with CONFIG, also the site's configuration and the key files beside it
install:
	@[ -n "$(HOST)" ] || { echo "usage: make install HOST=pi@shop-1.local [CONFIG=site/mamoru.toml]" >&2; exit 2; }
	@if [ -n "$(CONFIG)" ]; then $(MAKE) --no-print-directory build && \
	  bin/mamoru check --no-probe --key-dir "$$(dirname -- "$(CONFIG)")" --config "$(CONFIG)"; fi
	cmd/mamoru/installer/remote-install.sh "$(HOST)" "$(MAKE)" "$(CONFIG)" bin/mamoru

## minio: the MinIO server for tests and the demo
minio: $(MINIO)
$(MINIO):
	@echo "building MinIO $(MINIO_VERSION) once (about 3 minutes)..." >&2
	GOBIN=$(dir $(MINIO)) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

## versitygw: the versitygw server for the write-once tests
versitygw: $(VERSITYGW)
$(VERSITYGW):
	@echo "building versitygw $(VERSITYGW_VERSION) once..." >&2
	GOBIN=$(dir $(VERSITYGW)) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

## mailpit: the SMTP server for the e-mail alert tests
mailpit: $(MAILPIT)
$(MAILPIT):
	@echo "building mailpit $(MAILPIT_VERSION) once..." >&2
	GOBIN=$(dir $(MAILPIT)) $(GO) install github.com/axllent/mailpit@$(MAILPIT_VERSION)

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

## test: every test, with the race detector, then again cross-built for
## arm64 under qemu
test: $(MINIO) $(VERSITYGW) $(MAILPIT)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-arm64

## bench: the benchmarks (see bench/README.md)
bench: build $(MINIO)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bench/run

## soak: the recorder for SOAK_MINUTES (60) with a press every 2 minutes,
## uploading to MinIO; prints RSS, open files and CPU per minute
SOAK_MINUTES ?= 60
soak: $(MINIO)
	MAMORU_SOAK_MINUTES=$(SOAK_MINUTES) $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./cmd/mamoru

## sync-long: the A/V sync proof on a 10-minute clip (make test does 30 s)
sync-long: $(MINIO)
	MAMORU_SYNC_SECONDS=600 $(GO) test -count=1 -timeout 30m -run '^TestSoundAndPictureInSync$$' -v ./e2e

## powercut: SIGKILL the whole recorder 100 times (make test does 10)
powercut: $(MINIO)
	MAMORU_POWER_CUTS=100 $(GO) test -count=1 -timeout 60m -run '^TestPowerCuts$$' -v ./cmd/mamoru

## fuzz: run each fuzzer for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz FuzzParser -fuzztime $(FUZZTIME) ./capture/h264
	$(GO) test -run '^$$' -fuzz FuzzParseSPS -fuzztime $(FUZZTIME) ./capture/h264
	$(GO) test -run '^$$' -fuzz FuzzRecover -fuzztime $(FUZZTIME) ./capture/mp4
	$(GO) test -run '^$$' -fuzz FuzzReadManifest -fuzztime $(FUZZTIME) ./outbox
	$(GO) test -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME) ./audit
	$(GO) test -run '^$$' -fuzz FuzzTamper -fuzztime $(FUZZTIME) ./audit
	$(GO) test -run '^$$' -fuzz FuzzReadProgress -fuzztime $(FUZZTIME) ./uploader
	$(GO) test -run '^$$' -fuzz FuzzCheckSignature -fuzztime $(FUZZTIME) ./bucket

clean:
	rm -rf bin $(DEMO_STATE)
