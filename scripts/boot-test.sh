#!/usr/bin/env bash
# scripts/boot-test.sh: boot a real systemd in systemd-nspawn and run oxios
# under it as `oxios install` leaves it (docs/design.md, "Tests").
#
# Run by hostsvc/boottest (TestBoot), which starts a private containerd,
# lays out the hostile paths and writes the config. `make boot-test` (or this
# script without BOOT_* variables) runs that Go test.
#
# What it proves, each step checked from the host side:
#   1. a Debian root with systemd (mmdebstrap, cached by its recipe) boots
#      with `systemd-nspawn --boot --register=no`;
#   2. a unit rendered by hostsvc.JoinExecLine for the hostile arguments
#      hands exactly those bytes to its program (argv dumped and compared);
#   3. `oxios install --now` inside: the daemon becomes ready, checked with
#      an HTTP GET from the host; `systemctl show -p ExecStart` and the main
#      process's /proc/PID/cmdline are exactly the rendered hostile args;
#   4. `systemctl stop oxiosd`: the daemon drains (SIGTERM rewritten to
#      SIGINT) and containerd holds no task and no container afterwards;
#   5. SIGKILL to the unit's main process: systemd restarts it, and the new
#      oxios adopts the running task (same task PID, one task);
#   6. a crash of the CLI (SIGABRT: Go exits 2): ExecStopPost= stops and
#      removes the task it left, and the restart starts a fresh one;
#   7. `oxios uninstall`: stop (drain), disable, remove, reload; a second
#      `oxios install --now` starts it again;
#   8. poweroff: the task is stopped and removed.
#
# Inputs (environment; paths are host paths, bind-mounted at the same path):
#   BOOT_CONTAINERD_ADDRESS  containerd socket      BOOT_NAMESPACE, BOOT_ID
#   BOOT_BIN   oxios binary   BOOT_CONFIG  its config   BOOT_PORT  daemon port
#   BOOT_LOG   the task's log file       BOOT_BINDS  newline-separated dirs
#   BOOT_BINDS_RO  newline-separated read-only paths  BOOT_OUT  scratch dir
#   BOOT_EXPECT_CMDLINE     NUL-separated argv oxios must run with
#   BOOT_EXPECT_SHOW        the "path=... ; argv[]=..." systemctl must show
#   BOOT_ARGV_UNIT, BOOT_ARGV_EXPECT  the argv-check unit and its expected dump
#   BOOT_CACHE  rootfs cache (default /var/cache/oxios)
set -euo pipefail

if [ -z "${BOOT_CONTAINERD_ADDRESS:-}" ]; then
	cd "$(dirname "$0")/.."
	export PATH=/usr/local/go/bin:$PATH
	exec go test -count=1 -timeout 20m -run '^TestBoot$' -v ./hostsvc/boottest/
fi

CACHE=${BOOT_CACHE:-/var/cache/oxios}
SUITE=bookworm
# The host's own Debian mirror (the one apt-get already reaches), unless
# BOOT_MIRROR says otherwise.
host_mirror() {
	{ grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
	  grep -hs '^deb ' /etc/apt/sources.list || true; } |
		awk '$2 !~ /-security/ { print $2; exit }'
}
MIRROR=${BOOT_MIRROR:-$(host_mirror)}
[ -n "$MIRROR" ] || { echo "boot-test: no Debian mirror in /etc/apt sources; set BOOT_MIRROR" >&2; exit 1; }
# dbus: systemctl show and busctl go through the bus.
PACKAGES=systemd,systemd-sysv,dbus
# Bump when the customisation below changes: it is part of the cache key.
RECIPE=2
ID=$BOOT_ID
NS=$BOOT_NAMESPACE
SOCK=$BOOT_CONTAINERD_ADDRESS
OUT=$BOOT_OUT

T0=$(date +%s%N)
STEP_T=$T0
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
step() {
	echo "--- [$(ms "$T0") ms, previous step $(ms "$STEP_T") ms] $*"
	STEP_T=$(date +%s%N)
}
NSPAWN=
LEADER=
fail() {
	echo "FAIL: $*" >&2
	if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
		inside systemctl --no-pager status oxiosd.service >&2 || true
		inside journalctl --no-pager -n 80 -u oxiosd.service >&2 || true
	fi
	[ -f "$BOOT_LOG" ] && { echo "--- task log tail:" >&2; tail -n 30 "$BOOT_LOG" >&2; }
	exit 1
}
cleanup() {
	if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
		kill -TERM "$NSPAWN" 2>/dev/null || true   # nspawn: SIGTERM = orderly poweroff
		for _ in $(seq 1 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$NSPAWN" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# inside CMD...: run CMD in the booted machine (all its namespaces, its root),
# with a clean environment, as systemctl in there expects.
inside() {
	nsenter -t "$LEADER" -m -u -i -n -p -C -r -w -- \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# ctr_task: "PID STATUS" of our task in containerd, empty when there is none.
ctr_task() {
	ctr --address "$SOCK" -n "$NS" tasks ls 2>/dev/null | awk -v id="$ID" '$1 == id { print $2, $3 }'
}
ctr_has_container() {
	ctr --address "$SOCK" -n "$NS" containers ls -q 2>/dev/null | grep -qx "$ID"
}

# wait_restarted BEFORE: until systemd has restarted the unit (NRestarts
# above BEFORE) and it is active again, which for Type=notify means the new
# oxios sent READY=1. systemctl has no wait for a restart: poll, 30 s at
# most. Leaves n and a set for the caller's failure message.
wait_restarted() {
	for _ in $(seq 1 600); do
		n=$(inside systemctl show -p NRestarts --value oxiosd.service)
		a=$(inside systemctl is-active oxiosd.service || true)
		[ "$n" -gt "$1" ] && [ "$a" = active ] && return 0
		sleep 0.05
	done
	return 1
}

# nspawn_path escapes a path for --bind=SRC:DST: a backslash escapes the
# next character, so ":" and "\" are the two that need one.
nspawn_path() { local p=${1//\\/\\\\}; printf '%s' "${p//:/\\:}"; }

# ---------------------------------------------------------------- rootfs
step "rootfs: mmdebstrap $SUITE ($PACKAGES), cached in $CACHE"
mkdir -p "$CACHE"
KEY=$(printf '%s\n' "$RECIPE" "$SUITE" "$MIRROR" "$PACKAGES" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16)
TAR=$CACHE/boot-rootfs-$KEY.tar
ROOT=$CACHE/boot-rootfs-$KEY
exec 9>"$CACHE/boot-rootfs.lock"
flock 9
if [ ! -d "$ROOT" ]; then
	if [ ! -f "$TAR" ]; then
		echo "building $TAR (not cached)"
		# console-getty: nobody logs in on the read-only console.
		rm -f "$TAR.partial.tar"
		mmdebstrap --quiet --variant=minbase --mode=root --include="$PACKAGES" \
			--customize-hook='chroot "$1" systemctl mask console-getty.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer' \
			--customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id; : > "$1"/etc/machine-id' \
			"$SUITE" "$TAR.partial.tar" "$MIRROR"   # the .tar suffix selects the format
		mv "$TAR.partial.tar" "$TAR"
	fi
	rm -rf "$ROOT.tmp"
	mkdir "$ROOT.tmp"
	tar -C "$ROOT.tmp" -xf "$TAR"
	mv "$ROOT.tmp" "$ROOT"
else
	echo "cached: $ROOT"
fi
flock -u 9

# ---------------------------------------------------------------- boot
step "boot: systemd-nspawn --boot --register=no"
BINDS=(--bind="$(nspawn_path "$(dirname "$SOCK")")")
while IFS= read -r p; do [ -n "$p" ] && BINDS+=(--bind="$(nspawn_path "$p")"); done <<<"${BOOT_BINDS:-}"
while IFS= read -r p; do [ -n "$p" ] && BINDS+=(--bind-ro="$(nspawn_path "$p")"); done <<<"${BOOT_BINDS_RO:-}"
# --keep-unit: with --register=no, nothing needs the host's bus (there is no
# systemd on the host of the test VM). --volatile=overlay: the cached root
# stays pristine; every write lands in a tmpfs that dies with the machine.
systemd-nspawn --boot --register=no --keep-unit --volatile=overlay --console=read-only \
	--machine="oxios-boot-$$" -D "$ROOT" "${BINDS[@]}" >"$OUT/console.log" 2>&1 &
NSPAWN=$!
for _ in $(seq 1 600); do
	LEADER=$(pgrep -P "$NSPAWN" -x systemd || true)
	[ -n "$LEADER" ] && break
	kill -0 "$NSPAWN" 2>/dev/null || { cat "$OUT/console.log" >&2; fail "systemd-nspawn exited"; }
	sleep 0.02
done
[ -n "$LEADER" ] || fail "no systemd under systemd-nspawn (pid $NSPAWN)"
# systemctl needs the manager's private socket, created early in boot.
for _ in $(seq 1 600); do
	[ -S "/proc/$LEADER/root/run/systemd/private" ] && break
	sleep 0.02
done
# --wait blocks until the boot transaction is done (no polling on our side).
state=$(inside systemctl is-system-running --wait || true)
echo "machine up: leader pid $LEADER, state $state"
case "$state" in
running) ;;
degraded)
	# A unit unrelated to oxios failed in the minimal root: say which, go on.
	echo "note: machine degraded:" && inside systemctl --no-pager --failed || true ;;
*) fail "system state '$state'" ;;
esac

# ---------------------------------------------------------------- escaping
step "escaping: a unit rendered for the hostile arguments runs with exactly them"
inside install -m 0644 "$BOOT_ARGV_UNIT" /etc/systemd/system/argv-check.service
inside systemctl daemon-reload
inside systemctl start argv-check.service || fail "argv-check.service failed"
cmp "$BOOT_ARGV_EXPECT" "$(dirname "$BOOT_ARGV_EXPECT")/argv.out" ||
	fail "argv-check: the program received other arguments than rendered"
echo "all $(tr -cd '\0' <"$BOOT_ARGV_EXPECT" | wc -c) hostile arguments arrived byte for byte"

# ---------------------------------------------------------------- install
step "install: oxios install --now inside the machine"
inside "$BOOT_BIN" install --now --watchdog 2s --config "$BOOT_CONFIG" || fail "oxios install --now"
inside systemctl is-active --quiet oxiosd.service || fail "oxiosd.service is not active after install --now"
inside "$BOOT_BIN" install --dry-run --watchdog 2s --config "$BOOT_CONFIG" >"$OUT/dry-run.service" ||
	fail "oxios install --dry-run"
inside cat /etc/systemd/system/oxiosd.service | cmp - "$OUT/dry-run.service" || fail "--dry-run printed another unit than install wrote"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$BOOT_PORT/health/ready" || true)
[ "$code" = 200 ] || fail "GET /health/ready from the host: $code"
read -r TASKPID TASKSTATE <<<"$(ctr_task)"
[ "${TASKSTATE:-}" = RUNNING ] || fail "containerd: task $ID is '${TASKSTATE:-absent}'"
echo "ready from the host (HTTP 200), task pid $TASKPID running"

show=$(inside systemctl show -p ExecStart --value oxiosd.service)
printf '%s' "$show" >"$OUT/show.txt"
inside busctl --json=short get-property org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/oxiosd_2eservice \
	org.freedesktop.systemd1.Service ExecStart >"$OUT/execstart.json" || fail "busctl get-property ExecStart"
case "$show" in
*"$BOOT_EXPECT_SHOW"*) ;;
*) fail "systemctl show -p ExecStart: $show; want it to contain: $BOOT_EXPECT_SHOW" ;;
esac
MAIN=$(inside systemctl show -p MainPID --value oxiosd.service)
inside cat "/proc/$MAIN/cmdline" >"$OUT/cmdline"
cmp "$BOOT_EXPECT_CMDLINE" "$OUT/cmdline" || fail "oxios runs with another argv than rendered"
echo "systemctl show and /proc/$MAIN/cmdline: exactly the rendered arguments"

# WatchdogSec=2s: oxios must feed it (WATCHDOG=1 every second while the
# daemon is live); systemd stamps each ping, so watch the stamp move.
[ "$(inside systemctl show -p WatchdogUSec --value oxiosd.service)" = 2s ] || fail "WatchdogSec not 2s"
wd0=$(inside systemctl show -p WatchdogTimestampMonotonic --value oxiosd.service)
for _ in $(seq 1 100); do
	wd1=$(inside systemctl show -p WatchdogTimestampMonotonic --value oxiosd.service)
	[ "$wd1" != "$wd0" ] && break
	sleep 0.05
done
[ "$wd1" != "$wd0" ] || fail "no watchdog ping from oxios within 5 s (WatchdogTimestampMonotonic stuck at $wd0)"
echo "watchdog fed (stamp $wd0 -> $wd1 us)"

# ---------------------------------------------------------------- stop
step "stop: systemctl stop oxiosd"
drained=$(grep -c 'drained, exiting' "$BOOT_LOG" || true)
inside systemctl stop oxiosd.service || fail "systemctl stop"
[ -z "$(ctr_task)" ] || fail "task still in containerd after stop: $(ctr_task)"
ctr_has_container && fail "container $ID still in containerd after stop"
[ "$(grep -c 'drained, exiting' "$BOOT_LOG" || true)" -gt "$drained" ] || fail "the daemon did not drain (no 'drained, exiting' in $BOOT_LOG)"
echo "task drained, stopped and removed"

# ---------------------------------------------------------------- restart
step "restart: SIGKILL to the unit's main process"
inside systemctl start oxiosd.service || fail "systemctl start"
read -r TASKPID TASKSTATE <<<"$(ctr_task)"
[ "${TASKSTATE:-}" = RUNNING ] || fail "task not running after start"
OLDMAIN=$(inside systemctl show -p MainPID --value oxiosd.service)
BEFORE=$(inside systemctl show -p NRestarts --value oxiosd.service)
inside systemctl kill --kill-whom=main --signal=SIGKILL oxiosd.service
# systemd restarts it after RestartSec; active again means the new oxios
# sent READY=1 (Type=notify).
wait_restarted "$BEFORE" || fail "not restarted: NRestarts $n, $a"
NEWMAIN=$(inside systemctl show -p MainPID --value oxiosd.service)
[ "$NEWMAIN" != "$OLDMAIN" ] || fail "MainPID unchanged ($NEWMAIN)"
read -r PID2 STATE2 <<<"$(ctr_task)"
[ "$PID2" = "$TASKPID" ] && [ "$STATE2" = RUNNING ] || fail "task not adopted: pid $TASKPID -> ${PID2:-none} ${STATE2:-}"
[ "$(ctr --address "$SOCK" -n "$NS" tasks ls -q | wc -l)" = 1 ] || fail "more than one task"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$BOOT_PORT/health/ready" || true)
[ "$code" = 200 ] || fail "GET /health/ready after the restart: $code"
echo "restarted (main pid $OLDMAIN -> $NEWMAIN), task $TASKPID adopted, still ready"

# ---------------------------------------------------------------- crash
step "crash: SIGABRT to the unit's main process (a Go crash: exit status 2, not a signal)"
drained=$(grep -c 'drained, exiting' "$BOOT_LOG" || true)
BEFORE=$(inside systemctl show -p NRestarts --value oxiosd.service)
inside systemctl kill --kill-whom=main --signal=SIGABRT oxiosd.service
wait_restarted "$BEFORE" || fail "not restarted after the crash: NRestarts $n, $a"
# ExecStopPost= (SERVICE_RESULT=exit-code) stopped and removed the task the
# crashed CLI left; the restarted CLI started a fresh one.
[ "$(grep -c 'drained, exiting' "$BOOT_LOG" || true)" -gt "$drained" ] || fail "ExecStopPost did not stop the task (no drain)"
read -r PID3 STATE3 <<<"$(ctr_task)"
[ "$STATE3" = RUNNING ] && [ "$PID3" != "$TASKPID" ] || fail "want a fresh task after the crash: pid $TASKPID -> ${PID3:-none} ${STATE3:-}"
[ "$(ctr --address "$SOCK" -n "$NS" tasks ls -q | wc -l)" = 1 ] || fail "more than one task"
echo "crashed CLI: ExecStopPost drained and removed task $TASKPID, restart started task $PID3"

# ---------------------------------------------------------------- uninstall
step "uninstall: oxios uninstall (stop, disable, remove, reload), then install --now again"
drained=$(grep -c 'drained, exiting' "$BOOT_LOG" || true)
inside "$BOOT_BIN" uninstall || fail "oxios uninstall"
[ -z "$(ctr_task)" ] || fail "task still in containerd after uninstall: $(ctr_task)"
ctr_has_container && fail "container $ID still in containerd after uninstall"
inside test ! -e /etc/systemd/system/oxiosd.service || fail "unit file still there"
inside test ! -e /etc/systemd/system/multi-user.target.wants/oxiosd.service || fail "still enabled"
load=$(inside systemctl show -p LoadState --value oxiosd.service)
[ "$load" = not-found ] || fail "after uninstall and reload, LoadState=$load"
[ "$(grep -c 'drained, exiting' "$BOOT_LOG" || true)" -gt "$drained" ] || fail "the daemon did not drain at uninstall"
inside "$BOOT_BIN" install --now --watchdog 2s --config "$BOOT_CONFIG" || fail "second oxios install --now"
[ "$(ctr_task | cut -d' ' -f2)" = RUNNING ] || fail "no task after the second install"
echo "uninstalled cleanly (task drained and removed, unit gone), installed again"

# ---------------------------------------------------------------- poweroff
step "poweroff: the machine shuts down, the task goes with it"
drained=$(grep -c 'drained, exiting' "$BOOT_LOG" || true)
inside systemctl poweroff --no-block || true
wait "$NSPAWN" || true
NSPAWN=
[ -z "$(ctr_task)" ] || fail "task still in containerd after poweroff: $(ctr_task)"
ctr_has_container && fail "container $ID still in containerd after poweroff"
[ "$(grep -c 'drained, exiting' "$BOOT_LOG" || true)" -gt "$drained" ] || fail "the daemon did not drain at poweroff"
echo "machine off, task drained and removed"

step "PASS boot test"
