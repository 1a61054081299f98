#!/usr/bin/env bash
# `make k8s-test` (and the last step of `make test`): the shipped manifest
# under a real kubelet. A standalone kubelet (no API server) runs static Pods
# made from deploy/kubernetes/deployment.yaml's pod template on a private
# containerd with its CRI plugin and a CNI bridge; the Go test in
# deploy/kubernetes/k8stest drives the scenarios and reads the kubelet's
# view of each pod from its read-only /pods endpoint.
#
# Needs root and build/oxios-image.tar (`make image`; `make k8s-test` builds
# it). The kubelet and crictl are built from the Go module proxy once and
# cached in $OXIOS_K8S_CACHE (default /var/cache/oxios-k8s).
#
# Everything it starts or changes is undone on exit, also on failure or ^C:
# kubelet, pods, containerd and its shims, mounts, the CNI bridge and veths,
# the iptables chains the kubelet adds, the kernel settings the kubelet and
# the bridge plugin write, and the directories they create outside the
# private work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

KUBE_VERSION=v1.34.4   # deploy/kubernetes/kubelet/go.mod pins the same
CRICTL_VERSION=v1.34.0 # cri-tools release for Kubernetes 1.34
CACHE=${OXIOS_K8S_CACHE:-/var/cache/oxios-k8s}
IMAGE=${OXIOS_K8S_IMAGE:-build/oxios-image.tar}
PAUSE_REF=localhost/oxios-k8stest-pause:1
BRIDGE=oxk8s0
SUBNET=10.213.7.0/24
KUBELET_PORT=20250 KUBELET_RO_PORT=20255 KUBELET_HEALTHZ_PORT=20248
# What the kubelet (setupKernelTunables) and the bridge plugin (isGateway)
# write; restored on exit.
SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
	kernel/keys/root_maxkeys kernel/keys/root_maxbytes net/ipv4/ip_forward)
# Created by the kubelet or the CNI plugins when missing, whatever their flags
# say; removed on exit if this run created them.
OUTSIDE=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /var/run/netns /run/netns
	/etc/kubernetes /usr/libexec/kubernetes /run/containerd/runc/k8s.io)

die() { echo "k8s-test: $*" >&2; exit 1; }
log() { echo "k8s-test: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (containerd, kubelet, CNI): run sudo make k8s-test"
bash scripts/deps.sh
[ -f "$IMAGE" ] || die "$IMAGE is missing: run 'make image' (or 'make k8s-test', which does)"

# --- kubelet and crictl: built once, cached -------------------------------
build_tools() {
	mkdir -p "$CACHE"
	KUBELET=$CACHE/kubelet-$KUBE_VERSION
	CRICTL=$CACHE/crictl-$CRICTL_VERSION
	if [ ! -x "$KUBELET" ]; then
		log "building kubelet $KUBE_VERSION into $KUBELET (once; several minutes)"
		local t0=$SECONDS
		# -X: what Kubernetes' own build stamps, so the kubelet reports its version.
		local v=k8s.io/component-base/version minor=${KUBE_VERSION#v1.}
		(cd deploy/kubernetes/kubelet && CGO_ENABLED=0 go build -trimpath \
			-ldflags "-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*}" \
			-o "$KUBELET.tmp" k8s.io/kubernetes/cmd/kubelet) || die "kubelet build failed (deploy/kubernetes/kubelet)"
		mv -f "$KUBELET.tmp" "$KUBELET"
		log "kubelet built in $((SECONDS - t0)) s"
	fi
	if [ ! -x "$CRICTL" ]; then
		log "building crictl $CRICTL_VERSION into $CRICTL (once)"
		local gobin
		gobin=$(mktemp -d)
		CGO_ENABLED=0 GOBIN=$gobin go install -trimpath -ldflags '-s -w' \
			"sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" || die "crictl build failed"
		mv -f "$gobin/crictl" "$CRICTL"
		rm -rf "$gobin"
	fi
}

# --- state recorded before anything changes, for teardown ------------------
declare -A SYSCTL_WAS=()
declare -A CHAINS_WAS=()
OUTSIDE_NEW=()
record_host() {
	for s in "${SYSCTLS[@]}"; do
		[ -r "/proc/sys/$s" ] && SYSCTL_WAS[$s]=$(cat "/proc/sys/$s")
	done
	for d in "${OUTSIDE[@]}"; do
		[ -e "$d" ] || OUTSIDE_NEW+=("$d")
	done
	for ipt in iptables ip6tables; do
		for table in filter nat mangle; do
			CHAINS_WAS[$ipt/$table]=$(chains "$ipt" "$table")
		done
	done
}

chains() { "$1" -w 5 -t "$2" -S 2>/dev/null | awk '$1 == "-N" {print $2}' || true; }

# --- teardown: every step tolerates what an earlier failure left ----------
BASE=""
KUBELET_PID="" CONTAINERD_PID=""
teardown() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	[ -n "$BASE" ] || exit "$rc"
	log "tearing down"
	stop_pid "$KUBELET_PID" 10
	if [ -n "$CONTAINERD_PID" ] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then
		# Pods first, through the CRI: that stops their containers and runs
		# the CNI DEL that removes veths and IPAM leases.
		timeout 60 "$CRICTL" --timeout 30s rmp -a -f >/dev/null 2>&1
	fi
	stop_pid "$CONTAINERD_PID" 10
	kill_leftovers
	unmount_under "$BASE"
	remove_netns
	remove_links
	remove_chains
	remove_cgroups
	restore_sysctls
	for d in "${OUTSIDE_NEW[@]}"; do
		[ -e "$d" ] || continue
		log "removing $d (created by this run)"
		unmount_under "$d"
		rm -rf "$d"
	done
	if [ "$rc" -ne 0 ]; then
		log "failed (exit $rc); logs kept in build/k8s-test-logs"
		mkdir -p build/k8s-test-logs
		cp -f "$BASE"/*.log build/k8s-test-logs/ 2>/dev/null
	fi
	rm -rf "$BASE"
	exit "$rc"
}

stop_pid() { # PID SECONDS: TERM, then KILL after SECONDS
	local pid=$1 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# kill_leftovers kills the shims bound to this containerd (their command
# line names its socket) and every process still in a pod cgroup.
kill_leftovers() {
	local p
	for p in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$p/cmdline" | grep -q -- "-address $BASE/c.sock"; } 2>/dev/null &&
			kill -KILL "${p#/proc/}" 2>/dev/null
	done
	for p in $(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
		/sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
}

unmount_under() { # deepest first
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
}

remove_netns() { # the pod network namespaces of this run's sandboxes
	local n
	for n in /var/run/netns/cni-* /run/netns/cni-*; do
		[ -e "$n" ] || continue
		[ "$(stat -c %Y "$n")" -ge "$STARTED" ] || continue
		umount -l "$n" 2>/dev/null
		rm -f "$n"
	done
}

remove_links() { # veths left on this run's bridge (a pod not removed), then the bridge
	local l
	for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
		ip link del "$l" 2>/dev/null
	done
	ip link del "$BRIDGE" 2>/dev/null
}

# remove_chains deletes the chains this run added (the kubelet's
# KUBE-IPTABLES-HINT, KUBE-FIREWALL, KUBE-KUBELET-CANARY) and every rule
# that jumps to them.
remove_chains() {
	local ipt table c
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		for table in filter nat mangle; do
			for c in $(chains "$ipt" "$table"); do
				grep -qx -- "$c" <<<"${CHAINS_WAS[$ipt/$table]}" && continue
				"$ipt" -w 5 -t "$table" -S | awk -v c="$c" '$1 == "-A" && $0 ~ ("-j " c "( |$)")' |
					while read -r rule; do
						# shellcheck disable=SC2086 # a rule is words
						"$ipt" -w 5 -t "$table" ${rule/-A/-D}
					done
				"$ipt" -w 5 -t "$table" -F "$c"
			done
			for c in $(chains "$ipt" "$table"); do
				grep -qx -- "$c" <<<"${CHAINS_WAS[$ipt/$table]}" || "$ipt" -w 5 -t "$table" -X "$c"
			done
		done
	done
}

remove_cgroups() { # the kubelet's QoS tree (cgroupsPerQOS): v2, or every v1 hierarchy
	local h
	for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
		[ -d "$h/kubepods" ] || continue
		find "$h/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
	done
}

restore_sysctls() {
	local s
	for s in "${!SYSCTL_WAS[@]}"; do
		[ "$(cat "/proc/sys/$s")" = "${SYSCTL_WAS[$s]}" ] && continue
		log "restoring ${s//\//.} = ${SYSCTL_WAS[$s]} (was set to $(cat "/proc/sys/$s"))"
		echo "${SYSCTL_WAS[$s]}" >"/proc/sys/$s"
	done
}

# --- containerd with CRI ----------------------------------------------------
start_containerd() {
	mkdir -p "$BASE/containerd/root" "$BASE/containerd/state" "$BASE/cni/net.d" "$BASE/cni/ipam"
	cat >"$BASE/cni/net.d/10-oxios-k8stest.conflist" <<-EOF
		{
		  "cniVersion": "1.0.0",
		  "name": "oxios-k8stest",
		  "plugins": [{
		    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
		    "ipam": {"type": "host-local", "dataDir": "$BASE/cni/ipam",
		             "ranges": [[{"subnet": "$SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}]}
		  }]
		}
	EOF
	# restrict_oom_score_adj: without CAP_SYS_RESOURCE (some VMs withhold
	# it) runc cannot give the sandbox the -998 the kubelet asks for, and
	# every sandbox fails with "can't get final child's PID from pipe: EOF".
	cat >"$BASE/containerd.toml" <<-EOF
		version = 2
		root = "$BASE/containerd/root"
		state = "$BASE/containerd/state"
		disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
		  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
		  "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
		[grpc]
		  address = "$BASE/c.sock"
		[ttrpc]
		  address = "$BASE/c.sock.ttrpc"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$PAUSE_REF"
		  restrict_oom_score_adj = true
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		        Root = "$BASE/runc"
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$BASE/cni/net.d"
		    max_conf_num = 1
	EOF
	# setsid: a ^C reaches this script alone, whose teardown then stops
	# the kubelet and containerd in order (pods first, through the CRI).
	setsid containerd --config "$BASE/containerd.toml" >"$BASE/containerd.log" 2>&1 &
	CONTAINERD_PID=$!
	wait_for "containerd's CRI on $BASE/c.sock" 60 "$CRICTL" --timeout 2s info
}

wait_for() { # WHAT SECONDS CMD...: no event to wait on from a shell; poll
	local what=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "$what: not up after $secs s (logs: build/k8s-test-logs)"
}

# --- images: the pause sandbox (FROM scratch) and oxios ---------------------
import_images() {
	local w=$BASE/pause
	mkdir -p "$w/ctx"
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$w/ctx/pause" ./deploy/kubernetes/k8stest/pause
	printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$w/ctx/Containerfile"
	echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$w/policy.json"
	local store=(--root "$w/root" --runroot "$w/runroot" --storage-driver vfs)
	buildah "${store[@]}" bud --isolation chroot --signature-policy "$w/policy.json" --format oci \
		--timestamp 0 --pull=never -f "$w/ctx/Containerfile" -t "$PAUSE_REF" --quiet "$w/ctx" >/dev/null ||
		die "buildah: building the pause image failed"
	buildah "${store[@]}" push --signature-policy "$w/policy.json" --quiet "$PAUSE_REF" "oci-archive:$w/pause.tar:$PAUSE_REF" ||
		die "buildah: writing $w/pause.tar failed"
	buildah "${store[@]}" rmi -a -f >/dev/null 2>&1 || true
	ctr -a "$BASE/c.sock" -n k8s.io images import "$w/pause.tar" >/dev/null || die "ctr import $w/pause.tar failed"
	ctr -a "$BASE/c.sock" -n k8s.io images import "$IMAGE" >/dev/null || die "ctr import $IMAGE failed"
	rm -rf "$w"
}

# --- the kubelet, standalone -------------------------------------------------
start_kubelet() {
	local k=$BASE/kubelet p
	for p in $KUBELET_PORT $KUBELET_RO_PORT $KUBELET_HEALTHZ_PORT; do
		ss -Hltn "sport = :$p" | grep -q . && die "port $p is in use: the kubelet needs it"
	done
	mkdir -p "$k/root" "$k/manifests" "$k/podlogs" "$k/pki"
	# No API server: no authentication to speak of, a read-only port on
	# loopback for /pods, no node registration. Image GC and eviction off:
	# a nearly full test disk must not delete the oxios image or evict pods.
	cat >"$BASE/kubelet.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		failCgroupV1: false
		cgroupDriver: cgroupfs
		containerRuntimeEndpoint: unix://$BASE/c.sock
		staticPodPath: $k/manifests
		fileCheckFrequency: 1s
		podLogsDir: $k/podlogs
		volumePluginDir: $k/volume-plugins
		address: 127.0.0.1
		port: $KUBELET_PORT
		readOnlyPort: $KUBELET_RO_PORT
		healthzBindAddress: 127.0.0.1
		healthzPort: $KUBELET_HEALTHZ_PORT
		authentication:
		  anonymous: {enabled: true}
		  webhook: {enabled: false}
		authorization: {mode: AlwaysAllow}
		registerNode: false
		makeIPTablesUtilChains: false
		failSwapOn: false
		resolvConf: /etc/resolv.conf
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
	EOF
	setsid "$KUBELET" --config "$BASE/kubelet.yaml" --root-dir "$k/root" --cert-dir "$k/pki" \
		--hostname-override oxios-k8stest --v=2 >"$BASE/kubelet.log" 2>&1 &
	KUBELET_PID=$!
	wait_for "the kubelet (healthz on 127.0.0.1:$KUBELET_HEALTHZ_PORT)" 120 \
		curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
}

main() {
	build_tools
	local t0=$SECONDS
	go test -c -o "${TMPDIR:-/tmp}/oxios-k8stest.test" ./deploy/kubernetes/k8stest
	STARTED=$(date +%s)
	record_host
	BASE=$(mktemp -d /var/tmp/oxk8s.XXXXXX)
	mv "${TMPDIR:-/tmp}/oxios-k8stest.test" "$BASE/k8stest.test"
	trap teardown EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	export CONTAINER_RUNTIME_ENDPOINT=unix://$BASE/c.sock IMAGE_SERVICE_ENDPOINT=unix://$BASE/c.sock
	start_containerd
	import_images
	start_kubelet
	log "kubelet $KUBE_VERSION up after $((SECONDS - t0)) s; running the scenarios"
	set +e
	(cd deploy/kubernetes/k8stest &&
		OXIOS_K8S_TEST=1 OXIOS_K8S_KUBELET=http://127.0.0.1:$KUBELET_RO_PORT \
			OXIOS_K8S_MANIFESTS=$BASE/kubelet/manifests OXIOS_K8S_PODLOGS=$BASE/kubelet/podlogs \
			OXIOS_K8S_CRICTL=$CRICTL OXIOS_K8S_REPORT=$BASE/report.txt \
			"$BASE/k8stest.test" -test.v -test.count=1 -test.timeout 10m) 2>&1 | tee "$BASE/scenarios.log"
	local rc=${PIPESTATUS[0]}
	set -e
	mkdir -p build
	[ -f "$BASE/report.txt" ] && cp "$BASE/report.txt" build/k8s-test.txt && cat build/k8s-test.txt
	log "done in $((SECONDS - t0)) s (kubelet build not counted)"
	return "$rc"
}

main "$@"
