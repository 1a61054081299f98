#!/usr/bin/env bash
# `make bench-runtime`: oxios start/stop vs ctr run -d (bare, and with a
# 200 ms connect-poll loop) and ctr task kill + rm, on one private
# containerd and the same image; then the readiness table (oxios start
# against the daemon's listen and ready delays, for each probe kind);
# then the upgrade's downtime (oxios upgrade, good and rolled back, against
# oxios stop + oxios start by hand). ROUNDS=N, READINESS_ROUNDS=N and
# UPGRADE_ROUNDS=N change the number of rounds; BENCH=Runtime,
# BENCH=Readiness or BENCH=Upgrade runs one of them.
set -euo pipefail
export ROUNDS=${ROUNDS:-10} READINESS_ROUNDS=${READINESS_ROUNDS:-5}
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
exec go test -run '^$' -bench "Benchmark(${BENCH:-Runtime|Readiness|Upgrade})\$" -benchtime 1x -count 1 -timeout 2h ./bench/runtime/
