#!/usr/bin/env bash
# `make run`: on a fresh Debian/Ubuntu machine, as root, install what is
# missing, reach a containerd (the system one, else a private one), build the
# binaries and the image, start the daemon and wait until it is ready.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" -eq 0 ]; then bash scripts/deps.sh; fi
addr=$(bash scripts/containerd.sh start)
make -s build
make -s image
export CONTAINERD_ADDRESS=$addr
echo "run: containerd at $addr" >&2
bin/oxios start
# oxios finds the system socket and the default private one by itself;
# only a private containerd moved with OXIOS_CONTAINERD_STATE needs naming.
case $addr in
  /run/containerd/containerd.sock|/run/oxios/containerd/containerd.sock) how="oxios finds this containerd by itself" ;;
  *) how="export CONTAINERD_ADDRESS=$addr first" ;;
esac
cat >&2 <<MSG

Next: bin/oxios status | bin/oxios logs -n 20 | bin/oxios stop
($how; bash scripts/containerd.sh stop stops a private one)
MSG
