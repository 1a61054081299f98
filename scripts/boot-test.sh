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
#      with `systemd-nspawn --boot --register=no`, on an overlay of the
#      cache with a per-run upper dir: the machine's root survives its
#      reboots and power cuts, but not the run;
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
#   7. `systemctl restart oxiosd`: containerd's task list, polled all along,
#      never holds two tasks; the old task drains, a fresh one is ready;
#   7a. the automatic update (install --auto-update: oxios-upgrade.timer
#      enabled and active): its service run with image.archive unchanged
#      stops nothing; run again after a rebuilt image.archive appeared, it
#      upgrades under the running unit: the unit goes through "reloading"
#      (RELOADING=1 from oxios start --foreground), never fails, is not
#      restarted (NRestarts and MainPID unchanged), and the new image runs;
#   7b. `oxios upgrade --archive` to an image that crashes at start: rolled
#      back, the unit again only reloads, the previous image runs and is ready;
#   8. containerd SIGKILLed and started again under the running unit: the
#      task keeps its PID, the daemon keeps answering, `oxios status` exits
#      4 saying it still answers, and the journal has both "containerd
#      unavailable ...: reconnecting" and "containerd is back after ...";
#   9. `oxios uninstall` (stop, disable, remove, reload), then a plain
#      `oxios install`: enabled at boot, not started;
#  10. poweroff, boot the same root: oxiosd is ready (HTTP 200) with no
#      command run, on its first start (NRestarts=0);
#  11. a power cut: SIGKILL to the machine, containerd, the shim and the
#      task, the run dir wiped, containerd's metadata kept (it still holds
#      the container); containerd back, the next boot is ready on the first
#      start (NRestarts=0);
#  12. a data dir pre-created root:root 0755: `systemctl start` fails once
#      with exit 78, the journal names the host path and uid and the fix,
#      and no restart follows in two RestartSec; after that chown it starts;
#  13. poweroff: the task drains and is removed.
#
# Inputs (environment; paths are host paths, bind-mounted at the same path):
#   BOOT_CONTAINERD_ADDRESS  containerd socket      BOOT_NAMESPACE, BOOT_ID
#   BOOT_BIN   oxios binary   BOOT_CONFIG  its config   BOOT_PORT  daemon port
#   BOOT_LOG   the task's log file       BOOT_BINDS  newline-separated dirs
#   BOOT_BINDS_RO  newline-separated read-only paths  BOOT_OUT  scratch dir
#   BOOT_DATA, BOOT_RUN      the config's container.data_dir and run_dir
#   BOOT_CTRD_CTL, BOOT_CTRD_ACK  FIFOs: "kill" or "restart" to the Go test,
#                            which owns containerd; it answers "ok"
#   BOOT_EXPECT_CMDLINE     NUL-separated argv oxios must run with
#   BOOT_EXPECT_SHOW        the "path=... ; argv[]=..." systemctl must show
#   BOOT_ARGV_UNIT, BOOT_ARGV_EXPECT  the argv-check unit and its expected dump
#   BOOT_ARCHIVE  the config's image.archive (writable: replaced by a rebuild)
#   BOOT_UPGRADE_GOOD, BOOT_UPGRADE_BAD  image archives: a new image, and one
#                           that crashes at start
#   BOOT_CACHE  rootfs cache (default /var/cache/oxios)
set -euo pipefail

if [ -z "${BOOT_CONTAINERD_ADDRESS:-}" ]; then
	cd "$(dirname "$0")/.."
	export PATH=/usr/local/go/bin:$PATH
	exec go test -count=1 -timeout 20m -run '^TestBoot$' -v ./hostsvc/boottest/
fi

[ -z "${BOOT_TRACE:-}" ] || set -x
# A command that fails outside a check ends the script (set -e): say where,
# in functions too (errtrace).
set -o errtrace
trap 'echo "boot-test: line $LINENO: a command failed (exit $?)" >&2' ERR

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
MACHINE=   # the per-run overlay of the cached root: upper, work, root
fail() {
	echo "FAIL: $*" >&2
	if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
		inside systemctl --no-pager status oxiosd.service >&2 || true
		inside journalctl --no-pager -b -n 80 -u oxiosd.service >&2 || true
	fi
	[ -f "$BOOT_LOG" ] && { echo "--- task log tail:" >&2; tail -n 30 "$BOOT_LOG" >&2; }
	exit 1
}
cleanup() {
	if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
		kill -TERM "$NSPAWN" 2>/dev/null || true   # nspawn: SIGTERM = orderly poweroff
		for _ in $(seq 1 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$NSPAWN" 2>/dev/null || true
		wait "$NSPAWN" 2>/dev/null || true
	fi
	if [ -n "$MACHINE" ]; then
		umount "$MACHINE/root" 2>/dev/null || true
		# Never rm through a live overlay (a whiteout per file in upper).
		if mountpoint -q "$MACHINE/root"; then
			echo "boot-test: $MACHINE/root still mounted, left in place" >&2
		else
			rm -rf "$MACHINE"
		fi
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

# ctrd kill|restart: the private containerd belongs to the Go test (it
# restarts it on the same config, root and state): ask it through its FIFOs.
ctrd() {
	local r
	r=$(timeout 60 sh -c 'printf "%s\n" "$1" >"$2" && read -r r <"$3" && printf %s "$r"' _ "$1" "$BOOT_CTRD_CTL" "$BOOT_CTRD_ACK") || r="no answer"
	[ "$r" = ok ] || fail "containerd $1: $r"
}

# journal_count ERE: how many lines of this boot's oxiosd journal match.
journal_count() {
	inside journalctl -b -u oxiosd.service -o cat --no-pager | grep -cE -- "$1" || true
}
# wait_journal ERE BEFORE: until more than BEFORE lines match, 30 s at most
# (the journal has no wait for a line that journalctl -f would not hang on).
wait_journal() {
	for _ in $(seq 1 300); do
		[ "$(journal_count "$1")" -gt "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# get_ready: HTTP status of the daemon's readiness, from the host.
get_ready() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$BOOT_PORT/health/ready" || true; }

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
# The machine's root is an overlay of the cached root with a per-run upper
# dir: the cache stays pristine, and what the machine writes (the unit, its
# enablement) survives its reboots and power cuts, as a disk's would, but
# not this run.
MACHINE=$(mktemp -d /var/tmp/oxios-boot-root.XXXXXX)
mkdir "$MACHINE/upper" "$MACHINE/work" "$MACHINE/root"
mount -t overlay oxios-boot -o "lowerdir=$ROOT,upperdir=$MACHINE/upper,workdir=$MACHINE/work" "$MACHINE/root" ||
	fail "mount an overlay of $ROOT on $MACHINE/root"
BINDS=(--bind="$(nspawn_path "$(dirname "$SOCK")")")
while IFS= read -r p; do [ -n "$p" ] && BINDS+=(--bind="$(nspawn_path "$p")"); done <<<"${BOOT_BINDS:-}"
while IFS= read -r p; do [ -n "$p" ] && BINDS+=(--bind-ro="$(nspawn_path "$p")"); done <<<"${BOOT_BINDS_RO:-}"

# boot_machine: boot the machine and wait for the end of its boot
# transaction (oxiosd's start included once it is enabled: Type=notify, so
# its start job ends at READY=1). Sets NSPAWN, LEADER and BOOTED (ns).
boot_machine() {
	BOOTED=$(date +%s%N)
	# --keep-unit: with --register=no, nothing needs the host's bus (there
	# is no systemd on the host of the test VM).
	systemd-nspawn --boot --register=no --keep-unit --console=read-only \
		--machine="oxios-boot-$$" -D "$MACHINE/root" "${BINDS[@]}" >>"$OUT/console.log" 2>&1 &
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
	echo "machine up after $(ms "$BOOTED") ms: leader pid $LEADER, state $state"
	case "$state" in
	running) ;;
	degraded)
		# A unit unrelated to oxios failed in the minimal root: say which, go on.
		echo "note: machine degraded:" && inside systemctl --no-pager --failed || true ;;
	*) fail "system state '$state'" ;;
	esac
}

# poweroff_machine: an orderly shutdown, waited for.
poweroff_machine() {
	inside systemctl poweroff --no-block || true
	wait "$NSPAWN" || true
	NSPAWN= LEADER=
}

# ready_at_boot WHAT: the boot brought oxiosd up on its own, on its first
# start: active, ready from the host, never restarted.
ready_at_boot() {
	inside systemctl is-active --quiet oxiosd.service || fail "$1: oxiosd is $(inside systemctl is-active oxiosd.service) after boot"
	code=$(get_ready)
	[ "$code" = 200 ] || fail "$1: GET /health/ready from the host: $code"
	n=$(inside systemctl show -p NRestarts --value oxiosd.service)
	[ "$n" = 0 ] || fail "$1: oxiosd needed $n restarts to come up"
	read -r TASKPID TASKSTATE <<<"$(ctr_task)"
	[ "${TASKSTATE:-}" = RUNNING ] || fail "$1: task $ID is '${TASKSTATE:-absent}'"
	echo "ready $(ms "$BOOTED") ms after launching the machine, no command run: HTTP 200, NRestarts=0, task $TASKPID"
}

step "boot: systemd-nspawn --boot --register=no on an overlay of the cached root"
boot_machine

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
inside "$BOOT_BIN" install --now --watchdog 2s --auto-update --config "$BOOT_CONFIG" || fail "oxios install --now --auto-update"
inside systemctl is-active --quiet oxiosd.service || fail "oxiosd.service is not active after install --now"
for what in is-enabled is-active; do
	v=$(inside systemctl "$what" oxios-upgrade.timer || true)
	case "$v" in enabled | active) ;; *) fail "--auto-update: systemctl $what oxios-upgrade.timer says '$v'" ;; esac
done
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

# ---------------------------------------------------------------- systemctl restart
step "systemctl restart: never two tasks (containerd's task list polled throughout)"
read -r TASKPID _ <<<"$(ctr_task)"
drained=$(grep -c 'drained, exiting' "$BOOT_LOG" || true)
rm -f "$OUT/restart.done"
( while [ ! -e "$OUT/restart.done" ]; do
	ctr --address "$SOCK" -n "$NS" tasks ls -q 2>/dev/null | wc -l
done >"$OUT/restart.counts" ) &
POLLER=$!
rc=0
inside systemctl restart oxiosd.service || rc=$?
touch "$OUT/restart.done"
wait "$POLLER" || true
[ "$rc" = 0 ] || fail "systemctl restart: exit $rc"
samples=$(wc -l <"$OUT/restart.counts")
most=$(sort -n "$OUT/restart.counts" | tail -n 1)
[ "$samples" -ge 3 ] || fail "only $samples samples of the task list during the restart: too few to tell"
[ "$most" -le 1 ] || fail "containerd held $most tasks at once during systemctl restart"
[ "$(grep -c 'drained, exiting' "$BOOT_LOG" || true)" -gt "$drained" ] || fail "the old task did not drain at restart"
read -r PID2 STATE2 <<<"$(ctr_task)"
[ "${STATE2:-}" = RUNNING ] && [ "$PID2" != "$TASKPID" ] || fail "want a fresh task after the restart: pid $TASKPID -> ${PID2:-none} ${STATE2:-}"
[ "$(get_ready)" = 200 ] || fail "GET /health/ready after systemctl restart"
echo "task $TASKPID drained, task $PID2 ready; $samples samples, at most $most task, $(grep -cx 0 "$OUT/restart.counts") with none"

# ---------------------------------------------------------------- upgrade
# unit_state: "ActiveState/SubState" of oxiosd, read in one call (two
# calls could straddle a transition).
unit_state() {
	inside systemctl show -p ActiveState -p SubState oxiosd.service |
		awk -F= '$1 == "ActiveState" { a = $2 } $1 == "SubState" { s = $2 } END { printf "%s/%s", a, s }'
}
# watch_states: record oxiosd's state every 20 ms into $OUT/states until
# $OUT/states.done exists (systemd has no event stream we can read here).
watch_states() {
	rm -f "$OUT/states.done"
	( while [ ! -e "$OUT/states.done" ]; do unit_state; echo; sleep 0.02; done >"$OUT/states" ) &
	WATCHER=$!
}
unwatch_states() { touch "$OUT/states.done"; wait "$WATCHER" || true; }
# wait_running: until oxiosd is active/running again (READY=1 after the
# reload), 60 s at most.
wait_running() {
	for _ in $(seq 1 1200); do
		[ "$(unit_state)" = active/running ] && return 0
		sleep 0.05
	done
	return 1
}
# running_digest: the image digest oxios status reports.
running_digest() {
	inside "$BOOT_BIN" status --json --config "$BOOT_CONFIG" >"$OUT/status.json" 2>"$OUT/status.err" ||
		fail "oxios status --json: $(cat "$OUT/status.err")"
	python3 -c 'import json, sys; print(json.load(sys.stdin).get("image_digest", ""))' <"$OUT/status.json" ||
		fail "oxios status --json printed: $(cat "$OUT/status.json")"
}
# archive_digest FILE: the manifest digest an OCI archive holds.
archive_digest() { tar -xOf "$1" index.json | python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])'; }
# unit_unmoved WHAT: the unit never failed or restarted, and it went through
# "reloading" (the upgrade's stop and start were said as a reload).
unit_unmoved() {
	[ "$(inside systemctl show -p NRestarts --value oxiosd.service)" = "$NR" ] || fail "$1: the unit restarted"
	[ "$(inside systemctl show -p MainPID --value oxiosd.service)" = "$MAIN" ] || fail "$1: the unit's main process changed"
	grep -q '^reloading/' "$OUT/states" || fail "$1: oxiosd was never seen reloading: $(sort -u "$OUT/states" | tr '\n' ' ')"
	bad=$({ grep -vE '^(active/running|reloading/.*)$' "$OUT/states" || true; } | sort -u | tr '\n' ' ')
	[ -z "$bad" ] || fail "$1: oxiosd went through $bad"
	[ "$(get_ready)" = 200 ] || fail "$1: not ready from the host"
}

step "automatic update: oxios-upgrade.service with image.archive unchanged stops nothing"
read -r TASKPID _ <<<"$(ctr_task)"
MAIN=$(inside systemctl show -p MainPID --value oxiosd.service)
NR=$(inside systemctl show -p NRestarts --value oxiosd.service)
inside systemctl start oxios-upgrade.service || fail "oxios-upgrade.service failed: $(inside journalctl -b -u oxios-upgrade.service -o cat --no-pager | tail -n 5)"
read -r PID2 _ <<<"$(ctr_task)"
[ "$PID2" = "$TASKPID" ] || fail "the update check replaced task $TASKPID with ${PID2:-none}"
inside journalctl -b -u oxios-upgrade.service -o cat --no-pager | grep -q 'nothing changed' ||
	fail "oxios-upgrade.service did not say 'nothing changed'"
echo "oxios upgrade --if-newer: nothing changed, task $TASKPID untouched"

step "automatic update: a rebuilt image.archive is upgraded to under the running unit (reload, no restart)"
GOOD=$(archive_digest "$BOOT_UPGRADE_GOOD") || fail "no manifest digest in $BOOT_UPGRADE_GOOD"
OLD=$(running_digest) || exit 1
[ -n "$OLD" ] && [ "$OLD" != "$GOOD" ] || fail "running digest '$OLD' vs the new image's $GOOD"
cp "$BOOT_UPGRADE_GOOD" "$BOOT_ARCHIVE"
watch_states
rc=0
inside systemctl start oxios-upgrade.service || rc=$?
wait_running || { unwatch_states; fail "oxiosd not active/running after the upgrade: $(unit_state)"; }
unwatch_states
[ "$rc" = 0 ] || fail "oxios-upgrade.service failed: $(inside journalctl -b -u oxios-upgrade.service -o cat --no-pager | tail -n 8)"
unit_unmoved "upgrade"
[ "$(running_digest)" = "$GOOD" ] || fail "after the upgrade the daemon runs $(running_digest), want $GOOD"
read -r PID2 _ <<<"$(ctr_task)"
[ "$PID2" != "$TASKPID" ] || fail "the task was not replaced"
[ "$(ctr --address "$SOCK" -n "$NS" tasks ls -q | wc -l)" = 1 ] || fail "more than one task"
[ "$(journal_count 'the task exited for an upgrade \(upgrading to ')" -ge 1 ] || fail "the journal does not say the unit followed an upgrade"
st=$(inside systemctl show -p StatusText --value oxiosd.service)
case "$st" in *"upgrade to "*) ;; *) fail "StatusText after the upgrade: $st" ;; esac
echo "upgraded $OLD -> $GOOD under the unit: states $(sort -u "$OUT/states" | tr '\n' ' '), NRestarts $NR, main pid $MAIN, task $TASKPID -> $PID2"
echo "    StatusText: $st"

step "bad image: oxios upgrade to an image that crashes at start is rolled back (reload, no restart)"
read -r TASKPID _ <<<"$(ctr_task)"
watch_states
rc=0
inside "$BOOT_BIN" upgrade --archive "$BOOT_UPGRADE_BAD" --config "$BOOT_CONFIG" >"$OUT/upgrade-bad.txt" 2>&1 || rc=$?
wait_running || { unwatch_states; fail "oxiosd not active/running after the rollback: $(unit_state)"; }
unwatch_states
[ "$rc" = 1 ] || fail "oxios upgrade to a crashing image: exit $rc, want 1: $(cat "$OUT/upgrade-bad.txt")"
grep -q 'rolled back\|rolled-back' "$OUT/upgrade-bad.txt" || fail "no rollback in the report: $(cat "$OUT/upgrade-bad.txt")"
unit_unmoved "rollback"
[ "$(running_digest)" = "$GOOD" ] || fail "after the rollback the daemon runs $(running_digest), want $GOOD"
st=$(inside systemctl show -p StatusText --value oxiosd.service)
case "$st" in *"rolled back"*) ;; *) fail "StatusText after the rollback: $st" ;; esac
read -r PID2 _ <<<"$(ctr_task)"
echo "rolled back to $GOOD under the unit: states $(sort -u "$OUT/states" | tr '\n' ' '), NRestarts $NR, task $TASKPID -> $PID2"
echo "    StatusText: $st"

# ---------------------------------------------------------------- outage
step "containerd outage: SIGKILL containerd under the running unit, then start it again"
read -r TASKPID _ <<<"$(ctr_task)"
MAIN=$(inside systemctl show -p MainPID --value oxiosd.service)
NR=$(inside systemctl show -p NRestarts --value oxiosd.service)
down_re='containerd unavailable .*: reconnecting'
back_re='containerd is back after .*: the task \(PID [0-9]+\) kept running'
d0=$(journal_count "$down_re")
b0=$(journal_count "$back_re")
ctrd kill
wait_journal "$down_re" "$d0" || fail "no \"containerd unavailable ...: reconnecting\" in the journal after containerd died"
kill -0 "$TASKPID" 2>/dev/null || fail "task $TASKPID died with containerd"
[ "$(get_ready)" = 200 ] || fail "the daemon stopped answering while containerd was down"
rc=0
inside "$BOOT_BIN" status --config "$BOOT_CONFIG" >"$OUT/status-outage.txt" 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "oxios status during the outage: exit $rc, want 4: $(cat "$OUT/status-outage.txt")"
grep -q "still answers on 127.0.0.1:$BOOT_PORT" "$OUT/status-outage.txt" ||
	fail "oxios status during the outage does not say the daemon answers: $(cat "$OUT/status-outage.txt")"
ctrd restart
wait_journal "$back_re" "$b0" || fail "no \"containerd is back\" in the journal after containerd returned"
said=$(inside journalctl -b -u oxiosd.service -o cat --no-pager | grep -oE "$back_re" | tail -n 1 | grep -oE 'PID [0-9]+')
[ "$said" = "PID $TASKPID" ] || fail "the journal says the task kept running as $said, containerd had PID $TASKPID"
read -r PID2 STATE2 <<<"$(ctr_task)"
[ "$PID2" = "$TASKPID" ] && [ "${STATE2:-}" = RUNNING ] || fail "task did not survive: pid $TASKPID -> ${PID2:-none} ${STATE2:-}"
[ "$(inside systemctl show -p MainPID --value oxiosd.service)" = "$MAIN" ] || fail "the unit's main process changed"
[ "$(inside systemctl show -p NRestarts --value oxiosd.service)" = "$NR" ] || fail "the unit restarted during the outage"
echo "task $TASKPID kept running, same CLI (pid $MAIN); status said exit 4 and 'still answers'; journal:"
inside journalctl -b -u oxiosd.service -o cat --no-pager | grep -E "$down_re|$back_re" | tail -n 2 | sed 's/^/    /'

# ---------------------------------------------------------------- uninstall
step "uninstall: oxios uninstall (stop, disable, remove, reload), then a plain oxios install"
drained=$(grep -c 'drained, exiting' "$BOOT_LOG" || true)
inside "$BOOT_BIN" uninstall || fail "oxios uninstall"
[ -z "$(ctr_task)" ] || fail "task still in containerd after uninstall: $(ctr_task)"
ctr_has_container && fail "container $ID still in containerd after uninstall"
inside test ! -e /etc/systemd/system/oxiosd.service || fail "unit file still there"
for f in oxios-upgrade.timer oxios-upgrade.service timers.target.wants/oxios-upgrade.timer; do
	inside test ! -e "/etc/systemd/system/$f" || fail "$f still there after uninstall"
done
inside test ! -e /etc/systemd/system/multi-user.target.wants/oxiosd.service || fail "still enabled"
load=$(inside systemctl show -p LoadState --value oxiosd.service)
[ "$load" = not-found ] || fail "after uninstall and reload, LoadState=$load"
[ "$(grep -c 'drained, exiting' "$BOOT_LOG" || true)" -gt "$drained" ] || fail "the daemon did not drain at uninstall"
inside "$BOOT_BIN" install --watchdog 2s --config "$BOOT_CONFIG" >"$OUT/install.txt" 2>&1 ||
	fail "oxios install: $(cat "$OUT/install.txt")"
enabled=$(inside systemctl is-enabled oxiosd.service || true)
[ "$enabled" = enabled ] || fail "after a plain oxios install, systemctl is-enabled says '$enabled'"
active=$(inside systemctl is-active oxiosd.service || true)
[ "$active" = inactive ] || fail "a plain oxios install started the unit ($active)"
[ -z "$(ctr_task)" ] || fail "a task after a plain oxios install: $(ctr_task)"
inside test ! -e /etc/systemd/system/oxios-upgrade.timer || fail "a plain oxios install wrote the update timer"
echo "uninstalled cleanly; installed again: enabled, not started"
sed 's/^/    /' "$OUT/install.txt"

# ---------------------------------------------------------------- reboot
step "reboot: poweroff, then boot the same root; oxiosd comes up with no command run"
poweroff_machine
boot_machine
enabled=$(inside systemctl is-enabled oxiosd.service || true)
[ "$enabled" = enabled ] || fail "after the reboot, systemctl is-enabled says '$enabled'"
ready_at_boot "reboot"

# ---------------------------------------------------------------- power cut
step "power cut: SIGKILL the machine, containerd, the shim and the task; wipe $BOOT_RUN"
read -r TASKPID _ <<<"$(ctr_task)"
# A shim's command line carries its containerd's address.
SHIMS=$(pgrep -f -- "containerd-shim.* -address $SOCK" | tr '\n' ' ' || true)
[ -n "$SHIMS" ] || fail "no containerd shim found for $SOCK"
ctrd kill
# shellcheck disable=SC2086
kill -KILL "$LEADER" "$NSPAWN" $SHIMS "$TASKPID" 2>/dev/null || true
wait "$NSPAWN" || true
NSPAWN= LEADER=
# Not a child of ours: nothing to wait on but its /proc entry.
for _ in $(seq 1 100); do kill -0 "$TASKPID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$TASKPID" 2>/dev/null && fail "task $TASKPID survived SIGKILL"
# /run is a tmpfs on a real machine: the run dir comes back empty.
find "$BOOT_RUN" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
[ -z "$(ls -A "$BOOT_RUN")" ] || fail "$BOOT_RUN not empty after the wipe"
ctrd restart
# The hard case: containerd still holds the container, without a live task.
ctr_has_container || fail "containerd lost container $ID's record: this power cut would test nothing"
echo "killed machine, containerd, shim(s) $SHIMS and task $TASKPID; $BOOT_RUN wiped; containerd back, container $ID still recorded"

step "boot after the power cut: oxiosd's first start succeeds"
boot_machine
ready_at_boot "after the power cut"
[ "$(journal_count 'permission denied')" = 0 ] || fail "'permission denied' in this boot's oxiosd journal"

# ---------------------------------------------------------------- data dir
step "data dir: pre-created root:root 0755; systemctl start fails once, clearly, and does not loop"
inside systemctl stop oxiosd.service || fail "systemctl stop"
[ -z "$(ctr_task)" ] || fail "task still in containerd after stop: $(ctr_task)"
rm -rf -- "$BOOT_DATA"
mkdir -m 0755 "$BOOT_DATA"   # what an admin's `mkdir -p` as root leaves
chown root:root "$BOOT_DATA"
inside systemctl start oxiosd.service && fail "systemctl start succeeded with a root-owned data dir"
status=$(inside systemctl show -p ExecMainStatus --value oxiosd.service)
[ "$status" = 78 ] || fail "ExecMainStatus=$status, want 78 (RestartPreventExitStatus)"
want="data dir $BOOT_DATA (owner 0:0, mode 0755) is not writable by the daemon's user"
inside journalctl -b -u oxiosd.service -o cat --no-pager | grep -F -- "$want" >"$OUT/datadir.txt" || true
[ "$(wc -l <"$OUT/datadir.txt")" = 1 ] || fail "want the journal to say once: $want ..., got: $(cat "$OUT/datadir.txt")"
msg=$(cat "$OUT/datadir.txt")
[ -z "$(ctr_task)" ] || fail "a task was created for an unwritable data dir: $(ctr_task)"
# Restart= would start it again RestartSec after the failure: watch two
# RestartSec go by (this is waiting for an event that must not happen).
rsec=$(inside systemctl show -p RestartUSec --value oxiosd.service)
rsec=${rsec%s}
case "$rsec" in '' | *[!0-9]*) fail "RestartSec=$rsec: not whole seconds" ;; esac
until=$(( $(date +%s%N) + (2 * rsec + 1) * 1000000000 ))
while [ "$(date +%s%N)" -lt "$until" ]; do
	n=$(inside systemctl show -p NRestarts --value oxiosd.service)
	[ "$n" = 0 ] || fail "the unit restarted ($n) on a data dir no restart can fix"
	sleep 0.1
done
a=$(inside systemctl is-active oxiosd.service || true)
[ "$a" = failed ] || fail "after $((2 * rsec)) s the unit is '$a', want failed"
echo "failed once with exit 78, state failed, NRestarts=0 after $((2 * rsec + 1)) s; journal:"
echo "    $msg"
fix=$(printf '%s' "$msg" | sed -n 's/.*fix it with `\([^`]*\)`.*/\1/p')
case "$fix" in "chown -R "*" $BOOT_DATA") ;; *) fail "no chown command for $BOOT_DATA in: $msg" ;; esac
sh -c "$fix" || fail "the suggested fix failed: $fix"
inside systemctl start oxiosd.service || fail "systemctl start after \`$fix\`"
[ "$(get_ready)" = 200 ] || fail "not ready after \`$fix\`"
echo "after \`$fix\`: started and ready"

# ---------------------------------------------------------------- poweroff
step "poweroff: the machine shuts down, the task goes with it"
drained=$(grep -c 'drained, exiting' "$BOOT_LOG" || true)
poweroff_machine
[ -z "$(ctr_task)" ] || fail "task still in containerd after poweroff: $(ctr_task)"
ctr_has_container && fail "container $ID still in containerd after poweroff"
[ "$(grep -c 'drained, exiting' "$BOOT_LOG" || true)" -gt "$drained" ] || fail "the daemon did not drain at poweroff"
echo "machine off, task drained and removed"

step "PASS boot test"
