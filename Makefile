# oxios: see README.md. `make run` sets up and starts the daemon; `make test`
# runs every test. Scripts under scripts/ do the work; this file names it.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export CGO_ENABLED := 0
GOFLAGS_BUILD := -trimpath -buildvcs=false
VERSION := $(shell git describe --always 2>/dev/null || echo dev)
# oxios-init: with async preemption off, every SIGURG that arrives came from
# outside and can be forwarded (DESIGN.md, "The PID-1 contract").
# -tags oxios_fwdsig + -checklinkname=0: oxios-init reads the runtime's record
# of the dispositions found at start (runtime.fwdSig), so every signal that was
# ignored when it started stays ignored for the child (runtime/supervisor).
# -tags oxios_nohttps: no crypto/tls in PID 1, 2.2 MB less binary and about
# 1.4 MiB less resident memory; https:// probes are refused at start (health).
INIT_TAGS := oxios_fwdsig,oxios_nohttps
INIT_LDFLAGS := -s -w -checklinkname=0 -X runtime.godebugDefault=asyncpreemptoff=1 -X main.version=$(VERSION)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build image run test deps bench-init bench-health bench-runtime gauntlet boot-test k8s-test clean

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

gauntlet: image
	bash scripts/gauntlet.sh

boot-test: image
	bash scripts/boot-test.sh

k8s-test: image
	bash scripts/k8s-test.sh

clean:
	rm -rf bin build
