#!/usr/bin/env bash
# Starts (or reports) the containerd that `make run` uses: the system one
# when it is running, else a private one on its own socket and state
# directories, so that oxios never reconfigures the host's containerd.
#   scripts/containerd.sh start   prints the socket address on stdout
#   scripts/containerd.sh stop    stops the private one (tasks keep their shims)
set -euo pipefail

SYSTEM_SOCK=/run/containerd/containerd.sock
PRIV_ROOT=${OXIOS_CONTAINERD_ROOT:-/var/lib/oxios/containerd}
PRIV_STATE=${OXIOS_CONTAINERD_STATE:-/run/oxios/containerd}
PRIV_SOCK=$PRIV_STATE/containerd.sock
PIDFILE=$PRIV_STATE/containerd.pid
LOG=/var/log/oxios-containerd.log

reachable() { [ -S "$1" ] && ctr --address "$1" version >/dev/null 2>&1; }

start() {
  if reachable "$SYSTEM_SOCK"; then echo "$SYSTEM_SOCK"; return; fi
  if reachable "$PRIV_SOCK"; then echo "$PRIV_SOCK"; return; fi
  command -v containerd >/dev/null || { echo "containerd: not installed; run: sudo bash scripts/deps.sh" >&2; exit 1; }
  [ "$(id -u)" -eq 0 ] || { echo "containerd: not reachable at $SYSTEM_SOCK and starting a private one needs root; run: sudo make run" >&2; exit 1; }
  mkdir -p "$PRIV_ROOT" "$PRIV_STATE"
  cat > "$PRIV_STATE/config.toml" <<CONF
version = 2
root = "$PRIV_ROOT"
state = "$PRIV_STATE"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$PRIV_SOCK"
CONF
  # setsid: the daemon outlives this script on purpose; its PID file and
  # `scripts/containerd.sh stop` are how it stays tracked.
  setsid containerd --config "$PRIV_STATE/config.toml" >>"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 100); do
    reachable "$PRIV_SOCK" && { echo "$PRIV_SOCK"; return; }
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 0.1
  done
  echo "containerd: private instance did not come up on $PRIV_SOCK; see $LOG" >&2
  tail -n 20 "$LOG" >&2 || true
  exit 1
}

stop() {
  [ -f "$PIDFILE" ] || { echo "containerd: no private instance ($PIDFILE missing)" >&2; return 0; }
  pid=$(cat "$PIDFILE")
  if kill "$pid" 2>/dev/null; then
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
