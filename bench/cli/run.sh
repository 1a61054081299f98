#!/usr/bin/env bash
# What a CLI library would add to `oxios status`, end to end: the CLI as
# built (hand-written flag parsing) against the same CLI that also builds
# its command tree with spf13/cobra and parses the command line with it at
# start-up (cobra_probe.go.txt, in a scratch copy of the repository). Both
# run `oxios status` against a containerd of their own, ROUNDS x RUNS
# times, alternating, so load that changes during the run falls on both.
#
#   bash bench/cli/run.sh        (root; `make bench-cli`)
#   ROUNDS=5 RUNS=40 COBRA=v1.10.2
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH CGO_ENABLED=0
rounds=${ROUNDS:-5} runs=${RUNS:-40} cobra=${COBRA:-v1.10.2}
work=$(mktemp -d /var/tmp/oxios-bench-cli.XXXXXX)
ctrd_pid=""
trap '[ -n "$ctrd_pid" ] && kill "$ctrd_pid" 2>/dev/null && wait "$ctrd_pid" 2>/dev/null; rm -rf "$work"' EXIT

build() { go build -trimpath -buildvcs=false -ldflags '-s -w' -o "$1" ./cmd/oxios; }
build "$work/oxios-hand"
mkdir "$work/src"
git ls-files -z | xargs -0 tar -c | tar -x -C "$work/src"
cp bench/cli/cobra_probe.go.txt "$work/src/cmd/oxios/cobra_probe.go"
(cd "$work/src" && go get "github.com/spf13/cobra@$cobra" && build "$work/oxios-cobra")

cat > "$work/containerd.toml" <<CONF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/c.sock"
CONF
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 100); do [ -S "$work/c.sock" ] && ctr --address "$work/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
printf '[containerd]\naddress = "%s"\n[container]\nid = "bench-cli"\nport = 1\n' "$work/c.sock" > "$work/oxios.toml"

status() { "$1" status --no-logs --config "$work/oxios.toml" >/dev/null || [ $? = 3 ]; }

# init_ms BIN: the sum of every package's initialization (the Go
# runtime's inittrace), in ms: where a library's start-up cost shows,
# measured inside the process and so not drowned by exec and scheduling.
init_ms() {
  { GODEBUG=inittrace=1 "$1" status --no-logs --config "$work/oxios.toml" 2>&1 >/dev/null || true; } |
    awk '/^init / {s += $5} END {printf "%.3f", s}'
}

# ms_per_run BIN: wall time of RUNS runs of `status`, in ms per run.
ms_per_run() {
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq "$runs"); do status "$1"; done
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" -v n="$runs" 'BEGIN {printf "%.3f", (b - a) / 1e6 / n}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.3f", b - a}'; }

status "$work/oxios-hand"
status "$work/oxios-cobra"
hi=() ci=()
for _ in $(seq $((rounds * runs))); do
  hi+=("$(init_ms "$work/oxios-hand")")
  ci+=("$(init_ms "$work/oxios-cobra")")
done
mh=$(median "${hi[@]}") mc=$(median "${ci[@]}")
echo "package initialization of 'oxios status', median of $((rounds * runs)) runs each (ms):"
printf '  hand %s, cobra %s, cobra-hand %s\n' "$mh" "$mc" "$(diff_ms "$mh" "$mc")"
echo "packages only the cobra build initializes (one run; ms clock):"
GODEBUG=inittrace=1 "$work/oxios-hand" version 2>&1 >/dev/null | awk '/^init / {print $2}' | sort > "$work/hand.pkgs"
GODEBUG=inittrace=1 "$work/oxios-cobra" version 2>&1 >/dev/null | awk '/^init / {print $2, $5}' | sort |
  join -v 1 - "$work/hand.pkgs" | sed 's/^/  /'

echo "end to end, wall time of $runs runs per round (ms/run):"
printf '  %-6s %12s %12s %10s\n' round "hand" "cobra" "cobra-hand"
hs=() cs=()
for r in $(seq "$rounds"); do
  h=$(ms_per_run "$work/oxios-hand")
  c=$(ms_per_run "$work/oxios-cobra")
  hs+=("$h") cs+=("$c")
  printf '  %-6s %12s %12s %10s\n' "$r" "$h" "$c" "$(diff_ms "$h" "$c")"
done
mh=$(median "${hs[@]}") mc=$(median "${cs[@]}")
printf '  %-6s %12s %12s %10s\n' median "$mh" "$mc" "$(diff_ms "$mh" "$mc")"
printf 'binary size: hand %d bytes, cobra %d bytes\n' "$(stat -c %s "$work/oxios-hand")" "$(stat -c %s "$work/oxios-cobra")"
