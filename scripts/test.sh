#!/usr/bin/env bash
# `make test`: every test, including the integration tests against a
# containerd that the harness starts on a private socket and removes after.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" -eq 0 ]; then bash scripts/deps.sh; fi
mkdir -p build
make -s build
make -s image
go vet ./...
# The Makefile's oxios-init build tags select other files: vet those too.
go vet -tags oxios_nohttps ./runtime/supervisor ./health ./cmd/oxios-init
GOOS=darwin go build -o /dev/null ./cmd/oxios
# -p 1: packages run one at a time. Several assert kubelet budgets
# (failureThreshold x period + grace) and backoff schedules with real
# processes; on 2 cores, two packages' containerds and daemons at once add
# scheduling delays that are not oxios'.
go test -p 1 -count=1 -timeout 60m ./... 2>&1 | tee build/test.log
# The probes as the shipped oxios-init builds them (no https://).
go test -count=1 -tags oxios_nohttps ./health 2>&1 | tee -a build/test.log
bash scripts/tour-test.sh
# The manifest under a real kubelet (builds and caches the kubelet once).
bash scripts/k8s-test.sh 2>&1 | tee build/k8s-test.log
