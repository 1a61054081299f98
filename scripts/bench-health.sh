#!/usr/bin/env bash
# `make bench-health`: time from a daemon's listen() to readiness through
# oxios-init, listen:// vs tcp:// vs http:// vs notify:// vs the old 200 ms
# connect-poll loop, with
# CPU while waiting and oxios-init's RSS (bench/health/main.go).
# BENCH_HEALTH_RUNS and BENCH_HEALTH_MAX_DELAY tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
mkdir -p build
# Always: make is incremental, and a stale bin/oxios-init would measure old code.
make -s build
go build -trimpath -o build/bench-health ./bench/health
build/bench-health -init bin/oxios-init -n "${BENCH_HEALTH_RUNS:-100}" -max-delay "${BENCH_HEALTH_MAX_DELAY:-1s}" | tee build/bench-health.txt
