#!/usr/bin/env bash
# `make bench-runtime`: oxios start/stop vs ctr run -d (bare, and with a
# 200 ms connect-poll loop) and ctr task kill + rm, on one private
# containerd and the same image. ROUNDS=N changes the number of rounds.
set -euo pipefail
export ROUNDS=${ROUNDS:-10}
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
exec go test -run '^$' -bench BenchmarkRuntime -benchtime 1x -count 1 -timeout 30m ./bench/runtime/
