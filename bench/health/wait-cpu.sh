#!/usr/bin/env bash
# wait-cpu.sh: oxios-init's CPU while it waits for a daemon that takes a
# while, outside any container (seconds, not the runtime readiness table's
# minutes): bin/oxios-init runs bin/oxios-demo with OXIOS_DEMO_<KNOB>_DELAY
# and a readiness probe of KIND; when its --ready-file appears, the on-CPU
# time of all its threads (/proc/PID/task/*/schedstat, ns) is printed with
# the number of time slices, and oxios-init is stopped.
#
#   bash bench/health/wait-cpu.sh [INIT] [KIND] [KNOB] [DELAY] [RUNS]
#
# INIT bin/oxios-init, KIND http|tcp|listen (http), KNOB READY|LISTEN
# (READY), DELAY 5s, RUNS 3. Compare two builds by running it for each,
# interleaved; subtract a DELAY=0s run for oxios-init's own start.
set -euo pipefail
cd "$(dirname "$0")/../.."
init=${1:-bin/oxios-init} kind=${2:-http} knob=${3:-READY} delay=${4:-5s} runs=${5:-3}
demo=bin/oxios-demo
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
for i in $(seq "$runs"); do
	port=$((20000 + RANDOM % 20000))
	case $kind in
	http) spec="http://127.0.0.1:$port/health/ready" ;;
	tcp | listen) spec="$kind://127.0.0.1:$port" ;;
	*) echo "wait-cpu: KIND is http, tcp or listen, not $kind" >&2; exit 2 ;;
	esac
	rm -f "$tmp/ready"
	env "OXIOS_DEMO_LISTEN=127.0.0.1:$port" "OXIOS_DEMO_${knob}_DELAY=$delay" \
		"$init" -s --ready-file "$tmp/ready" --readiness "$spec" -- "$demo" >"$tmp/log" 2>&1 &
	pid=$!
	t0=$(date +%s%N)
	until [ -e "$tmp/ready" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "wait-cpu: oxios-init exited before ready:" >&2
			cat "$tmp/log" >&2
			exit 1
		fi
		sleep 0.002
	done
	t1=$(date +%s%N)
	read -r cpu slices < <(cat /proc/"$pid"/task/*/schedstat | awk '{s += $1; n += $3} END {print s, n}')
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	printf '%s %s %s_DELAY=%s cpu %.1f ms, %d slices, ready after %d ms\n' \
		"$init" "$kind" "$knob" "$delay" "$(echo "$cpu / 1000000" | bc -l)" "$slices" $(((t1 - t0) / 1000000))
done
