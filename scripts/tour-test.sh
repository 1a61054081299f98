#!/usr/bin/env bash
# The README's tour, run as printed: every command between <!-- tour -->
# and <!-- /tour --> in README.md, each in a new `env -i` shell (PATH and
# HOME only), from the repository's root. A command passes when it exits
# with the code its comment states ("exit N"), else 0, and its output
# (stdout and stderr) holds every phrase its comment quotes ("...").
#
# Isolation: the tour runs in its own mount and network namespaces, so it
# uses the default paths as a fresh machine would without touching the
# host's: tmpfs on /run/oxios and /run/containerd (no system containerd is
# seen; the private one's socket and state are the tour's), scratch
# directories on /var/lib/oxios, /var/log/oxios and /etc/oxios, and a
# loopback of its own for port 4200. Everything it started is stopped, and
# the test fails if anything is left running in its namespace.
#
#   scripts/tour-test.sh            (root; make test runs it)
#   TOUR_VERBOSE=1 scripts/tour-test.sh   also prints each command's output
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--inside" ]; then
  inside=1
else
  inside=0
fi

tour_lines() {
  awk '/^<!-- tour -->$/ {on = 1; next} /^<!-- \/tour -->$/ {on = 0} on' README.md | sed '/^```/d; /^[[:space:]]*$/d'
}

# expected_exit: the code a line's comment states, else 0.
expected_exit() {
  local comment=${1#*#}
  [ "$comment" != "$1" ] && [[ $comment =~ exit\ ([0-9]+) ]] && { echo "${BASH_REMATCH[1]}"; return; }
  echo 0
}

# quoted_phrases: the phrases a line's comment puts in double quotes, one
# a line.
quoted_phrases() {
  local comment=${1#*#}
  [ "$comment" != "$1" ] || return 0
  grep -o '"[^"]*"' <<<"$comment" | sed 's/^"//; s/"$//' || true
}

# leftovers: processes in this network namespace other than this script's.
leftovers() {
  local me
  me=$(readlink /proc/$$/ns/net)
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$me" ] || continue
    # this script's own subshells and pipelines share its process group
    [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$(ps -o pgid= -p $$ | tr -d ' ')" ] && continue
    echo "$pid $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)"
  done
}

# cleanup after a failed step: stop the daemon and the private
# containerd, then anything else this namespace still runs.
cleanup() {
  bin/oxios stop >/dev/null 2>&1 || true
  bash scripts/containerd.sh stop >/dev/null 2>&1 || true
  leftovers | while read -r pid _; do kill -9 "$pid" 2>/dev/null || true; done
}

run_inside() {
  # 0755 as on a host: oxios refuses a run dir others can write.
  mount -t tmpfs -o mode=0755 tmpfs /run/oxios
  mount -t tmpfs -o mode=0755 tmpfs /run/containerd
  for d in var-lib-oxios var-log-oxios etc-oxios; do mkdir -p "$TOUR_DIR/$d"; done
  mount --bind "$TOUR_DIR/var-lib-oxios" /var/lib/oxios
  mount --bind "$TOUR_DIR/var-log-oxios" /var/log/oxios
  mount --bind "$TOUR_DIR/etc-oxios" /etc/oxios
  ip link set lo up
  trap cleanup EXIT
  local n=0 failed=0
  while IFS= read -r line; do
    n=$((n + 1))
    want=$(expected_exit "$line")
    echo "tour $n: $line" >&2
    set +e
    t0=$SECONDS
    # </dev/null: the tour's lines come on this loop's stdin.
    env -i PATH="$TOUR_PATH" HOME="$HOME" bash -c "$line" < /dev/null > "$TOUR_DIR/out.$n" 2>&1
    got=$?
    set -e
    echo "tour $n: exit $got after $((SECONDS - t0))s" >&2
    [ "${TOUR_VERBOSE:-0}" = 0 ] || sed 's/^/    /' "$TOUR_DIR/out.$n" >&2
    if [ "$got" != "$want" ]; then
      echo "tour-test: FAIL: step $n exited $got, README says $want: $line" >&2
      sed 's/^/    /' "$TOUR_DIR/out.$n" >&2
      failed=1
      break
    fi
    while IFS= read -r phrase; do
      [ -n "$phrase" ] || continue
      grep -qF -- "$phrase" "$TOUR_DIR/out.$n" && continue
      echo "tour-test: FAIL: step $n printed no \"$phrase\", which README says it does: $line" >&2
      sed 's/^/    /' "$TOUR_DIR/out.$n" >&2
      failed=1
    done < <(quoted_phrases "$line")
    [ "$failed" = 0 ] || break
  done < <(tour_lines)
  [ "$failed" = 0 ] || exit 1
  [ "$n" -ge 5 ] || { echo "tour-test: only $n commands between the README's tour markers" >&2; exit 1; }
  trap - EXIT
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "tour-test: FAIL: the tour left processes running:" >&2
    echo "$left" >&2
    cleanup
    exit 1
  fi
  echo "tour-test: $n commands ok, nothing left running" >&2
}

if [ "$inside" = 1 ]; then
  run_inside
  exit
fi

[ "$(id -u)" -eq 0 ] || { echo "tour-test: needs root (make run starts a containerd and mounts)"; exit 1; }
# The tour's daemon is the default container oxios/oxios, whose cgroup
# is shared with any other containerd's oxios/oxios on this host: refuse
# rather than stop someone else's daemon.
for cg in /sys/fs/cgroup/oxios/oxios /sys/fs/cgroup/*/oxios/oxios; do
  # (cgroup files report size 0: read them)
  if [ -d "$cg" ] && [ -n "$(cat "$cg/cgroup.procs" 2>/dev/null)" ]; then
    echo "tour-test: a container oxios/oxios already runs on this host ($cg); stop it first" >&2
    exit 1
  fi
done
mkdir -p /run/oxios /run/containerd /var/lib/oxios /var/log/oxios /etc/oxios
TOUR_DIR=$(mktemp -d /var/tmp/oxios-tour.XXXXXX)
export TOUR_DIR TOUR_VERBOSE TOUR_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
set +e
unshare --mount --net --fork --propagation private bash "$0" --inside
rc=$?
set -e
rm -rf "$TOUR_DIR"
exit $rc
