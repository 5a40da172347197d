# influxrotate — build, test and the real components the end-to-end tests run.
#
#   make test    tools, then unit tests (-race), then end-to-end tests
#   make tools   real Telegraf and InfluxDB 1.8 into .tools/bin (once)
#   make build   binaries of ./cmd/... into bin/
#   make lint    gofmt check + go vet
#   make bench / make fuzz / make clean
#   make soak    1000 rotations under 20k metrics/s, 0 lost (docs/reliability.md)
#   make compat  the plugin's end-to-end test with every supported Telegraf
#
# End-to-end tests are ordinary Go tests whose names start with TestE2E: the
# unit step skips them (-skip), the e2e step runs only them (-run), with
# INFLUXROTATE_REQUIRE_TOOLS=1 so a missing binary fails instead of skipping.
# testutil/realtools finds the binaries in .tools/bin. A plain `go test ./...`
# runs both kinds (e2e ones skip when the tools are missing); -short skips e2e.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

GO ?= go
# Two cores: more parallel test binaries only thrash.
GO_TEST_P ?= 2
UNIT_TIMEOUT ?= 10m
E2E_TIMEOUT ?= 15m
FUZZTIME ?= 10s
BENCHTIME ?= 1s
SOAK_ROTATIONS ?= 1000
SOAK_TIMEOUT ?= 30m

# The race detector needs cgo and a C compiler on Linux. Without one the tests
# still run, with a loud warning, rather than failing a machine that only has Go.
RACE ?= $(shell cc=$$($(GO) env CC); if [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$${cc%% *}" >/dev/null 2>&1; then echo -race; fi)

TOOLS_DIR := $(CURDIR)/.tools
TOOLS_BIN := $(TOOLS_DIR)/bin

# Pinned real components. Changing a version or the tag set changes the stamp
# name, so the next `make tools` rebuilds. TELEGRAF_VERSION is the newest
# Telegraf that builds here; `make compat` covers the whole supported range.
# The module's own go.mod stays on the oldest supported Telegraf, so the one
# plugin source compiles against every version in the range.
TELEGRAF_VERSION ?= 1.40.1
TELEGRAF_COMPAT_VERSIONS ?= 1.37.2 1.38.3 1.39.2 1.40.1
TELEGRAF_TAGS := custom,inputs.internal,inputs.mock,outputs.execd,outputs.file,outputs.influxdb_v2
INFLUXD_VERSION := 1.8.10

TELEGRAF := $(TOOLS_BIN)/telegraf
INFLUXD := $(TOOLS_BIN)/influxd
comma := ,
TELEGRAF_STAMP := $(TOOLS_DIR)/stamps/telegraf-$(TELEGRAF_VERSION)-$(subst $(comma),+,$(TELEGRAF_TAGS))
INFLUXD_STAMP := $(TOOLS_DIR)/stamps/influxd-$(INFLUXD_VERSION)

# Everything `make tools` builds. Prerequisites are expanded when a rule is
# read, so a later addition is its own line anywhere below:
#   tools: $(TOOLS_BIN)/my-tool
TOOLS := $(TELEGRAF) $(INFLUXD)

# Tool installs resolve their own go.mod at the pinned version: the project's
# GOFLAGS (e.g. -mod=...) must not leak into them.
TOOL_INSTALL := env GOFLAGS= GOBIN=$(TOOLS_BIN) $(GO) install

.PHONY: all build test unit e2e bench fuzz soak lint tools clean

all: lint build test

build:
	@if [ -n "$$(find cmd -name '*.go' 2>/dev/null)" ]; then \
		mkdir -p bin && $(GO) build -o bin/ ./cmd/... && ls bin/; \
	else \
		echo "build: no commands under ./cmd yet"; \
	fi

test: tools unit e2e

unit:
	@[ -n "$(RACE)" ] || echo "WARNING: no C compiler for cgo; running tests WITHOUT the race detector" >&2
	$(GO) test $(RACE) -p $(GO_TEST_P) -timeout $(UNIT_TIMEOUT) -skip '^TestE2E' ./...

# End-to-end results are never taken from the test cache: what they test is
# other processes, which the cache cannot see.
e2e: tools
	INFLUXROTATE_REQUIRE_TOOLS=1 $(GO) test $(RACE) -count=1 -p $(GO_TEST_P) -timeout $(E2E_TIMEOUT) -run '^TestE2E' ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -p 1 ./...

# The soak of docs/reliability.md: SOAK_ROTATIONS token rotations while 20k
# metrics/s flow through the plugin, every old token deleted after adoption,
# then a tenth as many with resets, 5xx, 401s and delays injected; fails on a
# single lost point. Without the race detector, which would slow
# the load below 20k/s on a small machine; `make test` runs a 50-rotation
# soak with it.
soak:
	INFLUXROTATE_SOAK_ROTATIONS=$(SOAK_ROTATIONS) $(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) \
		-run '^TestProofSoak' ./plugins/outputs/influxdb_v2_rotating/

# Every fuzz target in the repository, FUZZTIME each, discovered per package.
# A package that does not compile fails the run rather than hiding its targets.
fuzz:
	@found=0; \
	for pkg in $$($(GO) list ./...); do \
		list=$$($(GO) test -list '^Fuzz' "$$pkg"); \
		for target in $$(printf '%s\n' "$$list" | grep '^Fuzz' || true); do \
			found=$$((found + 1)); \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
		done; \
	done; \
	echo "fuzz: $$found target(s) run for $(FUZZTIME) each"

lint:
	@unformatted=$$(find . -name '*.go' -not -path './.tools/*' -not -path './.build/*' -not -path './bin/*' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

tools: $(TOOLS)

# A binary is rebuilt when missing or older than its stamp; a new version or
# tag set is a new stamp file, hence newer than the old binary.
$(TOOLS_DIR)/stamps/%:
	@mkdir -p $(@D) && touch $@

# Built by the same script as bin/telegraf, without our plugin: it picks the
# Go toolchain the version needs (1.40 needs Go 1.27) and works around the
# modules the proxy does not serve, which a plain `go install` cannot.
$(TELEGRAF): $(TELEGRAF_STAMP)
	@echo "tools: building Telegraf v$(TELEGRAF_VERSION) (tags $(TELEGRAF_TAGS))"
	TELEGRAF_VERSION=$(TELEGRAF_VERSION) TELEGRAF_TAGS="$(TELEGRAF_TAGS)" TELEGRAF_WITH_PLUGIN=no \
		OUT=$@ GO=$(GO) bash build/telegraf/build.sh
	@touch $@

$(INFLUXD): $(INFLUXD_STAMP)
	@echo "tools: building InfluxDB v$(INFLUXD_VERSION)"
	$(TOOL_INSTALL) -ldflags "-X main.version=$(INFLUXD_VERSION)" \
		github.com/influxdata/influxdb/cmd/influxd@v$(INFLUXD_VERSION)
	$@ version | grep -q 'v$(INFLUXD_VERSION)'
	@touch $@

clean:
	rm -rf bin/ .build/ $(TOOLS_DIR)
	$(GO) clean -testcache

# Telegraf with outputs.influxdb_v2_rotating compiled in, into bin/telegraf:
# Telegraf's fork-and-import route done at build time (build/telegraf/build.sh,
# documented in the plugin's README). Always re-run since it depends on the
# plugin's sources; Go's build cache makes a rebuild take seconds.
.PHONY: telegraf
telegraf:
	TELEGRAF_VERSION=$(TELEGRAF_VERSION) GO=$(GO) bash build/telegraf/build.sh

# Every supported Telegraf: build it with the plugin compiled in, then run
# the plugin's end-to-end rotation test against that binary
# (INFLUXROTATE_TELEGRAF points the test at it). Not part of `make test`:
# four Telegraf builds take longer than CI should.
COMPAT_TESTS ?= ^TestE2E(RotationUnderLoad|ConfigCheckAndTestAcceptTheSample)$$
.PHONY: compat
compat: tools
	@for v in $(TELEGRAF_COMPAT_VERSIONS); do \
		echo "== compat: Telegraf $$v"; \
		TELEGRAF_VERSION=$$v OUT=$(CURDIR)/bin/telegraf-$$v GO=$(GO) bash build/telegraf/build.sh; \
		INFLUXROTATE_TELEGRAF=$(CURDIR)/bin/telegraf-$$v INFLUXROTATE_REQUIRE_TOOLS=1 \
			$(GO) test -count=1 -timeout $(E2E_TIMEOUT) -run '$(COMPAT_TESTS)' ./plugins/outputs/influxdb_v2_rotating/; \
	done; \
	echo "compat: $(TELEGRAF_COMPAT_VERSIONS) passed"

# The plugin's end-to-end tests run bin/telegraf.
e2e: telegraf

# The README's first command: watch influxrotate rotate a token every few
# seconds behind the adoption gate, through a stock Telegraf and the execd
# binary, against the embedded test server, with nothing but loopback
# networking (testutil/demo). It needs only the
# stock Telegraf of `make tools`. Stops by itself after 40 s or on Ctrl-C and
# exits non-zero if a point was lost. Longer: make demo DEMO_ARGS="-duration 2m".
DEMO_ARGS ?=
.PHONY: demo
demo: $(TELEGRAF)
	@mkdir -p bin
	$(GO) build -o bin/influxdb-v2-rotating ./cmd/influxdb-v2-rotating
	$(GO) build -o bin/influxrotate ./cmd/influxrotate
	$(GO) build -o bin/influxrotate-demo ./testutil/demo
	bin/influxrotate-demo -telegraf $(TELEGRAF) -execd bin/influxdb-v2-rotating -influxrotate bin/influxrotate $(DEMO_ARGS)
