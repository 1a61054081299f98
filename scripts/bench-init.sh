#!/usr/bin/env bash
# `make bench-init`: oxios-init against tini and dumb-init (Debian
# packages), side by side in one run; prints a table with ratios to tini.
# Needs root (unshare --pid for the reaping measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
for t in tini dumb-init unshare; do
  command -v "$t" >/dev/null || { echo "bench-init: $t not installed (scripts/deps.sh)" >&2; exit 1; }
done
[ -x bin/oxios-init ] || make -s build
mkdir -p build
go build -trimpath -o build/bench-init ./bench/init
exec build/bench-init -oxios-init bin/oxios-init -tini "$(command -v tini)" -dumb-init "$(command -v dumb-init)" "$@"
