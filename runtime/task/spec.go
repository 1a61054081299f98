package task

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/a7garden/oxios/runtime/contract"
)

// hashVersion changes when the way a spec is built changes, so that an
// upgrade of oxios recreates containers built by an older one.
const hashVersion = "oxios-spec-1"

// desired is the container oxios would create now.
type desired struct {
	spec *oci.Spec
	// specAny is spec as the container record stores it (JSON), marshalled
	// once for both the hash and the container (20 KB with the seccomp
	// profile: a marshal is a few hundred microseconds on the start path).
	specAny typeurl.Any
	hash    string
	// token is the notify secret of a container created from this spec
	// (record adds it): not in the hash, which must stay the same for an
	// unchanged config, and in the container only through record.
	token string
}

// record is the spec as a new container stores it: specAny plus the
// notify token in oxios-init's environment. Marshalled only when a
// container is created, so adopting costs no second marshal.
func (d *desired) record() (typeurl.Any, error) {
	s := *d.spec
	p := *s.Process
	p.Env = append(slices.Clone(p.Env), contract.NotifyTokenEnv+"="+d.token)
	s.Process = &p
	return typeurl.MarshalAnyToProto(&s)
}

// newToken is a fresh notify secret: 128 random bits, hex.
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("notify token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// desiredSpec builds the spec from the config and the image, and the hash
// that goes into the container's label.
func (r *Runtime) desiredSpec(ctx context.Context, img client.Image) (*desired, error) {
	d, err := r.buildDesired(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("build the container spec: %w", err)
	}
	return d, nil
}

func (r *Runtime) buildDesired(ctx context.Context, img client.Image) (*desired, error) {
	id := r.cfg.Container.ID
	opts, err := r.specOpts(ctx, img)
	if err != nil {
		return nil, err
	}
	s, err := oci.GenerateSpec(ctx, r.client, &containers.Container{ID: id}, opts...)
	if err != nil {
		return nil, err
	}
	sa, err := typeurl.MarshalAnyToProto(s)
	if err != nil {
		return nil, err
	}
	// The spec's JSON as raw bytes marshals exactly as the *oci.Spec field
	// did (compact, same escaping), so the hash of an unchanged config
	// stays what older oxios versions labelled (TestSpecHashStable).
	b, err := json.Marshal(struct {
		V, Runtime, Binary, Snapshotter, Digest string
		Spec                                    json.RawMessage
	}{hashVersion, r.cfg.Containerd.Runtime, r.cfg.RuntimeBinary(), r.cfg.Containerd.Snapshotter, img.Target().Digest.String(), sa.GetValue()})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	tok, err := newToken()
	if err != nil {
		return nil, err
	}
	return &desired{spec: s, specAny: sa, hash: hex.EncodeToString(sum[:12]), token: tok}, nil
}

// specOpts: the image's config, then the hardened defaults of issue 5.
func (r *Runtime) specOpts(ctx context.Context, img client.Image) ([]oci.SpecOpts, error) {
	k := r.cfg.Container
	ic, err := r.imageSpec(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.Name(), err)
	}
	uid, gid, err := r.resolveUser(img.Name(), ic.Config.User)
	if err != nil {
		return nil, err
	}
	opts := []oci.SpecOpts{
		withImageProcess(ic.Config),
		oci.WithUIDGID(uint32(uid), uint32(gid)),
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithHostHostsFile,
		oci.WithHostResolvconf,
		oci.WithNoNewPrivileges,
		withCaps(k.Port),
		oci.WithMounts(r.mounts()),
		seccomp.WithDefaultProfile(),
		withSyscallABIs(k.Seccomp32),
		oci.WithEnv(append(r.cfg.ContainerEnv(), append(r.cfg.InitEnv(), "NOTIFY_SOCKET="+contract.NotifySocket)...)),
	}
	if argv, err := r.argv(ctx, img); err != nil {
		return nil, err
	} else if argv != nil {
		opts = append(opts, oci.WithProcessArgs(argv...))
	}
	if k.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	opts = append(opts, r.resources()...)
	return append(opts, withOCIVersion), nil
}

// withOCIVersion: the runtime-spec module says 1.3.0, but Debian 12's crun
// (1.8) refuses any ociVersion that is not 1.0.x ("unknown version
// specified"). Nothing here needs a newer spec than 1.0.2.
func withOCIVersion(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	s.Version = "1.0.2-dev"
	return nil
}

// withImageProcess applies the image's env, argv and working directory.
// Not oci.WithImageConfig: it resolves additional groups from the rootfs'
// /etc/group, which needs the snapshot mounted, and the hash is computed
// before any snapshot exists. Users are numeric here (scratch image).
func withImageProcess(ic ocispec.ImageConfig) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		if err := oci.WithEnv(ic.Env)(ctx, c, ctr, s); err != nil {
			return err
		}
		s.Process.Args = append(append([]string{}, ic.Entrypoint...), ic.Cmd...)
		s.Process.Cwd = ic.WorkingDir
		if s.Process.Cwd == "" {
			s.Process.Cwd = "/"
		}
		return nil
	}
}

// argv: command replaces ENTRYPOINT+CMD, args replaces only CMD.
func (r *Runtime) argv(ctx context.Context, img client.Image) ([]string, error) {
	k := r.cfg.Container
	args := make([]string, len(k.Args))
	for i, a := range k.Args {
		args[i] = r.cfg.Expand(a)
	}
	if len(k.Command) > 0 {
		return append(append([]string{}, k.Command...), args...), nil
	}
	if len(k.Args) == 0 {
		return nil, nil
	}
	ic, err := r.imageSpec(ctx, img)
	if err != nil {
		return nil, err
	}
	return append(append([]string{}, ic.Config.Entrypoint...), args...), nil
}

// withCaps drops every capability; NET_BIND_SERVICE is kept only for a
// privileged port, and then also as ambient, because the daemon is a
// non-root grandchild (runc -> oxios-init -> daemon) and a non-root execve
// keeps only ambient capabilities.
func withCaps(port int) oci.SpecOpts {
	var caps []string
	if port < 1024 {
		caps = []string{"CAP_NET_BIND_SERVICE"}
	}
	return oci.Compose(oci.WithCapabilities(caps), oci.WithAmbientCapabilities(caps))
}

// withSyscallABIs keeps containerd's default seccomp allowlist but, unless
// allow32 (container.seccomp_32bit), drops the extra architectures that
// profile lists next to the host's (x86 and x32 beside x86_64, arm beside
// arm64). The filter then covers the native ABI only, and libseccomp's
// bad-architecture action kills a process that makes a syscall through a
// 32-bit ABI: a static 64-bit image never does, and int 0x80 is a
// classic way around filters written for x86_64. It also leaves runc a
// third of the BPF to compile, about 7 ms of every start.
func withSyscallABIs(allow32 bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if !allow32 && s.Linux != nil && s.Linux.Seccomp != nil {
			s.Linux.Seccomp.Architectures = nil
		}
		return nil
	}
}

// mounts: besides /tmp and the data dir, the container sees two
// subdirectories of the host-private run dir and nothing else of it: its
// own read-write ctr/ (oxios-init's health socket and ready file) and
// the host's notify/ read-only (connecting to the notify socket needs no
// write access to its directory).
func (r *Runtime) mounts() []specs.Mount {
	k := r.cfg.Container
	noexec := []string{"rbind", "nosuid", "nodev", "noexec"}
	return []specs.Mount{
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=65536k"}},
		{Destination: k.DataMount, Type: "bind", Source: k.DataDir, Options: []string{"rbind", "rw"}},
		{Destination: contract.RunMount, Type: "bind", Source: r.ctrDir(), Options: append(noexec, "rw")},
		{Destination: contract.NotifyMount, Type: "bind", Source: r.notifyDir(), Options: append(slices.Clone(noexec), "ro")},
	}
}

func (r *Runtime) resources() []oci.SpecOpts {
	res := r.cfg.Resources
	var opts []oci.SpecOpts
	if res.Memory > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(res.Memory)))
	}
	if res.CPUs > 0 {
		const period = 100000 // the CFS default period, in microseconds
		opts = append(opts, oci.WithCPUCFS(int64(res.CPUs*period), period))
	}
	if res.Pids > 0 {
		opts = append(opts, oci.WithPidsLimit(res.Pids))
	}
	return opts
}

// runDir is this container's host-private run directory, RUN_DIR/ID.
func (r *Runtime) runDir() string {
	return filepath.Join(r.cfg.Container.RunDir, r.cfg.Container.ID)
}

// runtimeInfo selects the shim and, through BinaryName, crun or runc (as
// client.WithRuntime records it).
func (r *Runtime) runtimeInfo() (containers.RuntimeInfo, error) {
	opts, err := typeurl.MarshalAny(&options.Options{BinaryName: r.cfg.RuntimeBinary()})
	if err != nil {
		return containers.RuntimeInfo{}, err
	}
	return containers.RuntimeInfo{Name: r.cfg.Containerd.Runtime, Options: opts}, nil
}

// imageSpec reads the image's config once per digest: spec, argv, the
// directory owner and the rootfs' diff IDs all need it, and each read is
// several content round trips.
func (r *Runtime) imageSpec(ctx context.Context, img client.Image) (ocispec.Image, error) {
	d := img.Target().Digest
	if r.specCache != nil && r.specDigest == d {
		return *r.specCache, nil
	}
	ic, err := r.readImageConfig(ctx, img.Target())
	if err != nil {
		return ic, err
	}
	r.specCache, r.specDigest = &ic, d
	return ic, nil
}

// LabelNotifyToken holds the container's notify secret (desired.token):
// host-only, never part of LabelHash.
const LabelNotifyToken = "oxios.notify-token"
