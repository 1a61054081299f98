#!/usr/bin/env bash
# `make bench-logs`: how fast a daemon can log through oxios-logd against
# containerd's own file:// logging, on one private containerd and the same
# image and writer (bench/logs). MIB=N (default 512) sets the volume of
# the main table, LINE_MIB=N (64) that of the one-write-per-line table,
# ROUNDS=N (3) the rounds; LOGD_B=PATH adds another logging binary (say,
# an older oxios-logd); LOG_DIR=DIR puts the logs there (default: a
# temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
exec go test -run '^$' -bench '^BenchmarkLogs$' -benchtime 1x -count 1 -timeout 30m ./bench/logs/
