# backupd — developer and CI tasks. `make test` is what CI runs (.ci/run).
#
#   make build   compile everything; binaries into bin/
#   make test    deps, go vet, go test -race, cross-builds for macOS and Windows
#   make demo    a simulated iPhone, backed up by backupd
#   make lint    gofmt, go vet, staticcheck
#   make bench   benchmarks, then the large phone (scripts/bench-large.sh:
#                a million files; FILES=n for another size)
#   make bench-compare  backupd's engine against idevicebackup2 (W1, W2, W3; restore of W1, W2)
#   make fuzz    every Fuzz target for FUZZTIME each
#   make torture the torture suite at full size, then every Fuzz target
#                for FUZZTIME (default 10m); prints trials, failures and
#                bytes written outside a root (scripts/torture.sh)
#   make screenshots  the web page's screenshots in docs/screenshots, made by
#                its browser test (headless chromium)
#   make deps    install the Debian packages the tests use if missing
#   make dist    release archives for six platforms and SHA256SUMS in dist/
#                (scripts/dist.sh; reproducible)
#   make deb     Debian packages for amd64, arm64 and armhf in dist/
#                (scripts/deb.sh, dpkg-deb)
#   make package-test  the amd64 package installed into a throwaway Debian
#                root (debootstrap) and checked there, as root; CI runs it

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools
TESTFLAGS ?=
BENCHFLAGS ?=
FUZZTIME  ?= 30s
# Where `make demo` puts the simulator's socket. A fixed short path: unix
# socket paths are limited to about 100 bytes.
TMP       ?= /tmp/backupd-demo
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# The tests build with the failpoints (the crash and torture tests arm
# them); `make build`, the release, never does: a test checks that its
# binaries hold no failpoint name.
TESTTAGS  := -tags failpoint

# staticcheck 2026.2.2; the 2026.x releases are the ones that know Go 1.26.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
# bbolt's own command, at the version go.mod uses, for `bbolt check` of the
# history after kill -9 (the torture tests find it on PATH).
BBOLT_VERSION := $(shell $(GO) list -m -f '{{.Version}}' go.etcd.io/bbolt)
BBOLT := $(TOOLS)/bbolt-$(BBOLT_VERSION)/bbolt

# Every command under cmd/ (backupd, iphonesim) becomes bin/<name>.
CMDS := $(sort $(patsubst cmd/%/,%,$(dir $(wildcard cmd/*/*.go))))

# Debian packages the tests and the demo use, and the commands that show
# they are installed.
# chromium is for the web page's browser test; dpkg-dev, lintian,
# debootstrap and systemd (systemd-analyze) are for the packaging tests and
# make package-test.
DEBS     := libimobiledevice-utils libplist-utils usbmuxd sqlite3 tmux chromium dpkg-dev lintian debootstrap systemd
DEB_CMDS := idevicebackup2 ideviceinfo idevicepair idevice_id plistutil usbmuxd sqlite3 tmux chromium dpkg-deb lintian debootstrap systemd-analyze

.PHONY: all build test vet cross demo screenshots bench bench-compare lint fuzz torture deps clean dist deb package-test

all: build

build:
	$(GO) build ./...
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

test: deps vet $(BBOLT)
	PATH="$(dir $(BBOLT)):$$PATH" $(GO) test -race -count=1 -timeout 15m $(TESTTAGS) $(TESTFLAGS) ./...
	$(MAKE) --no-print-directory cross

# Both builds: the release one and the tests' one with failpoints.
vet:
	$(GO) vet ./...
	$(GO) vet $(TESTTAGS) ./...

# backupd runs on Macs and PCs too; these catch code that only builds on
# Linux. CGO_ENABLED=0 because the release binaries are pure Go.
cross:
	GOOS=darwin  GOARCH=amd64 CGO_ENABLED=0 $(GO) build ./...
	GOOS=darwin  GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build ./...
	@# vet type-checks the tests too, so a test that only builds on Linux
	@# (mount namespaces, umask) must say so in its file name or tags.
	GOOS=darwin  GOARCH=arm64 CGO_ENABLED=0 $(GO) vet $(TESTTAGS) ./...
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) vet $(TESTTAGS) ./...

# Installs what is missing when we may (root, with apt-get); otherwise says
# what to install, and under CI fails rather than skip the tests that need
# these tools.
deps:
	@missing=(); \
	for c in $(DEB_CMDS); do \
	  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || [ -x /sbin/$$c ] || missing+=($$c); \
	done; \
	if [ $${#missing[@]} -eq 0 ]; then exit 0; fi; \
	echo "deps: missing: $${missing[*]}"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "deps: installing $(DEBS)"; \
	  apt-get update; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEBS); \
	  exit 0; \
	fi; \
	echo "deps: install them with: sudo apt-get install -y $(DEBS)"; \
	echo "deps: (tests that need them are skipped)"; \
	if [ "$${CI:-}" = true ]; then echo "deps: CI=true, so this is an error"; exit 1; fi

# A simulated iPhone backed up by `backupd run` when it is plugged in, then
# a backup whose cable is pulled halfway and what backupd says about it.
demo: build
	BIN=$(BIN) scripts/demo.sh

# The README's screenshots of the web page, taken by its browser test.
screenshots: deps
	BACKUPD_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestE2EWebPage$$' ./cmd/backupd

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(BENCHFLAGS) ./...
	scripts/bench-large.sh

# Wall time, CPU and peak RSS of backupd (its engine, and `backupd run` end
# to end) and Debian's idevicebackup2 on the same simulated workloads;
# medians of ROUNDS rounds (default 5).
bench-compare: deps
	scripts/bench-compare.sh

$(BBOLT):
	@mkdir -p $(dir $@)
	GOBIN=$(dir $@) $(GO) install go.etcd.io/bbolt/cmd/bbolt@$(BBOLT_VERSION)

$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

lint: $(STATICCHECK)
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi
	$(MAKE) --no-print-directory vet
	$(STATICCHECK) ./...
	$(STATICCHECK) $(TESTTAGS) ./...

# Runs each Fuzz target alone (go test -fuzz takes one at a time), all of
# them even when one fails, then fails if any did. A crash is saved under
# the package's testdata/fuzz/ by go test, where it becomes a seed.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# The torture suite (issue #8): cable pulls, kill -9, full and read-only
# disks, hostile devices and the rest at full size, then every Fuzz target,
# and a summary table; fails on any failure or byte outside a root. Its
# quick subset runs in make test. FUZZTIME defaults to 10m here.
torture: deps $(BBOLT)
	PATH="$(dir $(BBOLT)):$$PATH" GO=$(GO) TESTTAGS="$(TESTTAGS)" FUZZTIME=$(if $(filter command line environment,$(origin FUZZTIME)),$(FUZZTIME),10m) scripts/torture.sh

# Release archives and Debian packages, into dist/. The same commit gives
# the same bytes (SOURCE_DATE_EPOCH is the commit's time).
dist:
	GO=$(GO) VERSION=$(VERSION) scripts/dist.sh

deb:
	GO=$(GO) VERSION=$(VERSION) scripts/deb.sh

# The .deb installed into a debootstrapped Debian root: the user, folders,
# modes, doctor and a backup as backupd, remove and purge. Needs root and
# Debian's mirror the first time (the root is kept in bin/cache).
package-test: deps
	GO=$(GO) scripts/package-test.sh

clean:
	rm -rf $(BIN) dist
