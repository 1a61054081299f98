# oxios: see README.md. `make run` sets up and starts the daemon; `make test`
# runs every test. Scripts under scripts/ do the work; this file names it.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export CGO_ENABLED := 0
GOFLAGS_BUILD := -trimpath -buildvcs=false
VERSION := $(shell git describe --always 2>/dev/null || echo dev)
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# oxios-init: with async preemption off, every SIGURG that arrives came from
# outside and can be forwarded. INIT_GODEBUG is linked twice: as the Go
# runtime's GODEBUG default (the mechanism the go command itself uses for
# godebug defaults) and as main.godebugDefault, which oxios-init reads to
# know that the runtime's setting is in force.
# -tags oxios_nohttps: no crypto/tls in PID 1, 2.2 MB less binary and about
# 1.4 MiB less resident memory; https:// probes are refused at start (health).
INIT_GODEBUG := asyncpreemptoff=1
INIT_TAGS := oxios_nohttps
INIT_LDFLAGS := -s -w -X runtime.godebugDefault=$(INIT_GODEBUG) -X main.godebugDefault=$(INIT_GODEBUG) -X main.version=$(VERSION)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build image run test deps bench-init bench-health bench-runtime bench-cli bench-logd bench-logs gauntlet boot-test k8s-test clean

build:
	@mkdir -p bin
	go build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/oxios ./cmd/oxios
	go build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/oxios-logd ./cmd/oxios-logd
	go build $(GOFLAGS_BUILD) -tags $(INIT_TAGS) -ldflags '$(INIT_LDFLAGS)' -o bin/oxios-init ./cmd/oxios-init
	go build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/oxios-demo ./cmd/oxios-demo

image: build
	bash scripts/build-image.sh

deps:
	bash scripts/deps.sh

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

bench-init: build
	bash scripts/bench-init.sh

bench-health: build
	bash scripts/bench-health.sh

bench-runtime: image
	bash scripts/bench-runtime.sh

bench-cli: build
	bash bench/cli/run.sh

# The log driver's ready latency, on every start's path (bench/logd).
bench-logd: build
	go run ./bench/logd -a bin/oxios-logd -runs 300

# How fast the daemon can log: oxios-logd vs containerd's file:// (bench/logs).
bench-logs: image
	bash scripts/bench-logs.sh

gauntlet: image
	bash scripts/gauntlet.sh

boot-test: image
	bash scripts/boot-test.sh

k8s-test: image
	bash scripts/k8s-test.sh

clean:
	rm -rf bin build
