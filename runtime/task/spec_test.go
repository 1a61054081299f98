package task

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
)

// desiredSpec hashes the spec's JSON (marshalled once, as the container
// record stores it) where it used to hash the *oci.Spec: both must give
// the same bytes, or every container would be recreated after an upgrade.
func TestSpecHashStable(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "oxios")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "x"},
		seccomp.WithDefaultProfile(), oci.WithEnv([]string{"A=<&>", "B=\u2028é"}), oci.WithProcessArgs("/bin/x", `"q"`))
	if err != nil {
		t.Fatal(err)
	}
	sa, err := typeurl.MarshalAnyToProto(s)
	if err != nil {
		t.Fatal(err)
	}
	type head struct{ V, Runtime, Binary, Snapshotter, Digest string }
	h := head{hashVersion, "io.containerd.runc.v2", "", "overlayfs", "sha256:0"}
	old, err := json.Marshal(struct {
		V, Runtime, Binary, Snapshotter, Digest string
		Spec                                    *oci.Spec
	}{h.V, h.Runtime, h.Binary, h.Snapshotter, h.Digest, s})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := json.Marshal(struct {
		V, Runtime, Binary, Snapshotter, Digest string
		Spec                                    json.RawMessage
	}{h.V, h.Runtime, h.Binary, h.Snapshotter, h.Digest, sa.GetValue()})
	if err != nil {
		t.Fatal(err)
	}
	if string(old) != string(cur) {
		t.Fatalf("hash input changed:\n%.300s\n%.300s", old, cur)
	}
}

// containerd's default profile lists the 32-bit ABIs beside the native
// one; by default the spec keeps its allowlist and drops those, and
// container.seccomp_32bit keeps them.
func TestSeccompNativeABIOnly(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "oxios")
	for _, allow32 := range []bool{false, true} {
		s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "x"}, seccomp.WithDefaultProfile(), withSyscallABIs(allow32))
		if err != nil {
			t.Fatal(err)
		}
		sc := s.Linux.Seccomp
		if sc == nil || len(sc.Syscalls) == 0 || sc.DefaultAction == "" {
			t.Fatalf("seccomp_32bit=%v: the default profile is gone: %+v", allow32, sc)
		}
		if got := len(sc.Architectures); (got == 0) == allow32 {
			t.Errorf("seccomp_32bit=%v: architectures %v", allow32, sc.Architectures)
		}
	}
}
