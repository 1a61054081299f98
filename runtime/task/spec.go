package task

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/a7garden/oxios/runtime/config"
)

// hashVersion changes when the way a spec is built changes, so that an
// upgrade of oxios recreates containers built by an older one.
const hashVersion = "oxios-spec-1"

// desired is the container oxios would create now.
type desired struct {
	spec *oci.Spec
	hash string
}

// desiredSpec builds the spec from the config and the image, and the hash
// that goes into the container's label.
func (r *Runtime) desiredSpec(ctx context.Context, img client.Image) (*desired, error) {
	id := r.cfg.Container.ID
	opts, err := r.specOpts(ctx, img)
	if err != nil {
		return nil, err
	}
	s, err := oci.GenerateSpec(ctx, r.client, &containers.Container{ID: id}, opts...)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(struct {
		V, Runtime, Binary, Snapshotter, Digest string
		Spec                                    *oci.Spec
	}{hashVersion, r.cfg.Containerd.Runtime, r.cfg.RuntimeBinary(), r.cfg.Containerd.Snapshotter, img.Target().Digest.String(), s})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &desired{spec: s, hash: hex.EncodeToString(sum[:12])}, nil
}

// specOpts: the image's config, then the hardened defaults of issue 5.
func (r *Runtime) specOpts(ctx context.Context, img client.Image) ([]oci.SpecOpts, error) {
	k := r.cfg.Container
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithHostHostsFile,
		oci.WithHostResolvconf,
		oci.WithNoNewPrivileges,
		withCaps(k.Port),
		oci.WithMounts(r.mounts()),
		seccomp.WithDefaultProfile(),
		oci.WithEnv(append(append([]string{}, k.Env...), r.cfg.InitEnv()...)),
	}
	if argv, err := r.argv(ctx, img); err != nil {
		return nil, err
	} else if argv != nil {
		opts = append(opts, oci.WithProcessArgs(argv...))
	}
	if k.User != "" {
		opts = append(opts, oci.WithUser(k.User))
	}
	if k.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	return append(opts, r.resources()...), nil
}

// argv: command replaces ENTRYPOINT+CMD, args replaces only CMD.
func (r *Runtime) argv(ctx context.Context, img client.Image) ([]string, error) {
	k := r.cfg.Container
	if len(k.Command) > 0 {
		return append(append([]string{}, k.Command...), k.Args...), nil
	}
	if len(k.Args) == 0 {
		return nil, nil
	}
	ic, err := img.Spec(ctx)
	if err != nil {
		return nil, err
	}
	return append(append([]string{}, ic.Config.Entrypoint...), k.Args...), nil
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

func (r *Runtime) mounts() []specs.Mount {
	k := r.cfg.Container
	return []specs.Mount{
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=65536k"}},
		{Destination: k.DataMount, Type: "bind", Source: k.DataDir, Options: []string{"rbind", "rw"}},
		{Destination: config.RunMount, Type: "bind", Source: r.runDir(), Options: []string{"rbind", "rw"}},
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

// runDir is the host side of config.RunMount for this container.
func (r *Runtime) runDir() string {
	return filepath.Join(r.cfg.Container.RunDir, r.cfg.Container.ID)
}

// runtimeOpt selects the shim and, through BinaryName, crun or runc.
func (r *Runtime) runtimeOpt() client.NewContainerOpts {
	return client.WithRuntime(r.cfg.Containerd.Runtime, &options.Options{BinaryName: r.cfg.RuntimeBinary()})
}
