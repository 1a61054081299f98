#!/usr/bin/env bash
# Build the oxios image from the Containerfile into an OCI archive.
# `make image` runs it after `make build`.
#
#   scripts/build-image.sh [-o ARCHIVE] [-t REF]
#
#   -o ARCHIVE  output OCI archive (default build/oxios-image.tar; $OXIOS_IMAGE_OUT)
#   -t REF      image reference, stored as the index's
#               org.opencontainers.image.ref.name (default localhost/oxios:latest;
#               $OXIOS_IMAGE_REF)
#
# Environment:
#   OXIOS_IMAGE_ENGINE    buildah (default), podman or docker
#   OXIOS_IMAGE_REVISION  the org.opencontainers.image.revision label
#                         (default: git rev-parse HEAD, else "unknown")
#   OXIOS_IMAGE_STORAGE   buildah/podman storage driver: vfs (default) or overlay
#   OXIOS_IMAGE_BIN       directory holding oxios-init and oxios-demo (default bin,
#                         i.e. `make build`'s output)
#
# buildah and podman build in a private, temporary storage root (removed on
# exit), with chroot isolation and nothing pulled (FROM scratch), so the
# system's image store is never touched and no registry is needed. Two builds
# of the same binaries give the same manifest digest: --timestamp 0, no
# identity label, normalized file modes and times in the staged context.
#
# With docker (BuildKit/buildx), the equivalent is run for you:
#   OXIOS_IMAGE_ENGINE=docker scripts/build-image.sh
# i.e. `docker buildx build --provenance=false --build-arg SOURCE_DATE_EPOCH=0
#   --output type=oci,dest=ARCHIVE,name=REF,rewrite-timestamp=true CONTEXT`.
# Its index names the image with io.containerd.image.name=REF (containerd's
# importer reads that first) and ref.name=TAG, as docker always does.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

out=${OXIOS_IMAGE_OUT:-build/oxios-image.tar}
ref=${OXIOS_IMAGE_REF:-localhost/oxios:latest}
engine=${OXIOS_IMAGE_ENGINE:-buildah}
driver=${OXIOS_IMAGE_STORAGE:-vfs}
bindir=${OXIOS_IMAGE_BIN:-bin}

die() { echo "build-image: $*" >&2; exit 1; }

while getopts "o:t:h" opt; do
	case $opt in
	o) out=$OPTARG ;;
	t) ref=$OPTARG ;;
	h) sed -n '2,30p' "$0"; exit 0 ;;
	*) die "usage: scripts/build-image.sh [-o ARCHIVE] [-t REF]" ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || die "unexpected argument: $1 (usage: scripts/build-image.sh [-o ARCHIVE] [-t REF])"

# --- preconditions, each with the next step -------------------------------
[ -f Containerfile ] || die "Containerfile not found in $(pwd)"
for b in oxios-init oxios-demo; do
	[ -x "$bindir/$b" ] || die "$bindir/$b is missing: run 'make build' first (or 'make image', which does)"
	# A dynamically linked binary would not start on scratch.
	if command -v go >/dev/null && ! go version -m "$bindir/$b" 2>/dev/null | grep -q 'CGO_ENABLED=0'; then
		die "$bindir/$b was not built with CGO_ENABLED=0: it would not run on scratch; rebuild with 'make build'"
	fi
done
case $engine in
buildah | podman | docker) ;;
*) die "OXIOS_IMAGE_ENGINE=$engine: want buildah, podman or docker" ;;
esac
command -v "$engine" >/dev/null ||
	die "$engine not found on PATH: install it (Debian: 'apt-get install $engine', or scripts/deps.sh as root), or set OXIOS_IMAGE_ENGINE to one you have"
case $driver in vfs | overlay) ;; *) die "OXIOS_IMAGE_STORAGE=$driver: want vfs or overlay" ;; esac
if [ "$engine" != docker ] && [ "$(id -u)" -ne 0 ]; then
	echo "build-image: not root: $engine needs user namespaces (subuid/subgid) for this; if it fails, run as root" >&2
fi
revision=${OXIOS_IMAGE_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}

# --- a private work area: build context, storage, policy ------------------
# /var/tmp, not /tmp: vfs storage copies each layer, /tmp may be a small tmpfs.
work=$(mktemp -d "${TMPDIR:-/var/tmp}/oxios-image.XXXXXX")
mkdir -p "$(dirname "$out")"
tmpout=$out.tmp.$$
cleanup() {
	rm -f "$tmpout"
	if [ "$engine" != docker ] && [ -d "$work/root" ]; then
		# overlay leaves mounts behind; vfs has none and this is a no-op.
		"$engine" --root "$work/root" --runroot "$work/runroot" --storage-driver "$driver" \
			rm -a >/dev/null 2>&1 || true
		"$engine" --root "$work/root" --runroot "$work/runroot" --storage-driver "$driver" \
			rmi -a -f >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

ctx=$work/context
mkdir -p "$ctx/bin" "$ctx/data"
cp "$bindir/oxios-init" "$bindir/oxios-demo" "$ctx/bin/"
# Only content, mode and owner may reach the layer: a checkout's umask or a
# copy's mtime must not change the digest.
chmod 0755 "$ctx/bin/oxios-init" "$ctx/bin/oxios-demo" "$ctx/bin" "$ctx/data"
find "$ctx" -exec touch -h -d @0 {} +
cp Containerfile "$ctx/Containerfile"

# --- build ----------------------------------------------------------------
case $engine in
buildah | podman)
	# A private signature policy: scratch pulls nothing, but push to
	# oci-archive still consults a policy, and a fresh machine may lack
	# /etc/containers/policy.json.
	cat >"$work/policy.json" <<-'EOF'
		{"default": [{"type": "insecureAcceptAnything"}]}
	EOF
	store=(--root "$work/root" --runroot "$work/runroot" --storage-driver "$driver")
	if [ "$engine" = buildah ]; then
		build=(buildah "${store[@]}" bud --isolation chroot --signature-policy "$work/policy.json")
		push=(buildah "${store[@]}" push --signature-policy "$work/policy.json" --quiet)
	else
		build=(podman "${store[@]}" build --isolation chroot --signature-policy "$work/policy.json")
		push=(podman "${store[@]}" push --signature-policy "$work/policy.json" --quiet)
	fi
	"${build[@]}" --format oci --timestamp 0 --identity-label=false --pull=never \
		--build-arg "REVISION=$revision" -f "$ctx/Containerfile" -t "$ref" --quiet "$ctx" >/dev/null ||
		die "$engine build failed (storage $driver under $work; try OXIOS_IMAGE_STORAGE=vfs, and run as root)"
	"${push[@]}" "$ref" "oci-archive:$tmpout:$ref" ||
		die "$engine push to oci-archive:$tmpout failed"
	;;
docker)
	docker buildx version >/dev/null 2>&1 ||
		die "docker buildx is not available: install the buildx plugin (the OCI exporter needs BuildKit)"
	docker buildx build --provenance=false --sbom=false \
		--build-arg SOURCE_DATE_EPOCH=0 --build-arg "REVISION=$revision" \
		--output "type=oci,dest=$tmpout,name=$ref,rewrite-timestamp=true" \
		-f "$ctx/Containerfile" "$ctx" ||
		die "docker buildx build failed (is the docker daemon reachable? 'docker info')"
	;;
esac

# --- check what containerd's importer will see, then publish atomically ----
index=$(tar -xOf "$tmpout" index.json) || die "$tmpout has no index.json: not an OCI archive"
if [ "$engine" != docker ]; then
	case $index in
	*"\"org.opencontainers.image.ref.name\":\"$ref\""*) ;;
	*) die "$tmpout: index.json does not name $ref in org.opencontainers.image.ref.name: $index" ;;
	esac
fi
mv -f "$tmpout" "$out"
digest=$(printf '%s' "$index" | grep -o '"digest":"sha256:[0-9a-f]*"' | head -n1 | cut -d'"' -f4)
echo "build-image: $out: $ref manifest $digest (revision $revision, $engine)"
