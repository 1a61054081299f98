package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

const imageRef = "localhost/oxios:latest"

// TestImage builds the image twice from the same binaries with
// scripts/build-image.sh, as `make image` does, and checks that the
// manifest digests are equal (reproducible), that the archive honours the
// image contract of TEAM.md, and that containerd's importer finds it under
// localhost/oxios:latest.
func TestImage(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "buildah")
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	// `make build`, then a private copy of its output: other test packages
	// run `make build` in parallel, and the tree moves under six people, so
	// bin/ may change between the two builds; the image step is what is
	// under test here.
	bins := filepath.Join(dir, "bin")
	os.Mkdir(bins, 0o755)
	for _, name := range []string{"oxios-init", "oxios-demo"} {
		testenv.CopyFile(t, testenv.Bin(t, name), filepath.Join(bins, name), 0o755)
	}

	a := buildImage(t, root, bins, filepath.Join(dir, "a.tar"))
	b := buildImage(t, root, bins, filepath.Join(dir, "b.tar"))
	if a.manifestDigest != b.manifestDigest {
		t.Fatalf("two builds of the same binaries differ: %s vs %s", a.manifestDigest, b.manifestDigest)
	}
	t.Logf("manifest %s, both builds", a.manifestDigest)

	t.Run("contract", func(t *testing.T) { checkContract(t, a) })
	t.Run("containerd-import", func(t *testing.T) { checkImport(t, a.path) })
}

type ociArchive struct {
	path           string
	blobs          map[string][]byte // "sha256:..." -> content
	index          ocispec.Index
	manifestDigest string
	manifest       ocispec.Manifest
	config         ocispec.Image
}

func buildImage(t *testing.T, root, bins, out string) *ociArchive {
	t.Helper()
	cmd := exec.Command("bash", "scripts/build-image.sh", "-o", out)
	cmd.Dir = root
	// A fixed revision label: a commit landing between the two builds
	// must not make them differ.
	cmd.Env = append(os.Environ(), "OXIOS_IMAGE_REVISION=image-test", "OXIOS_IMAGE_BIN="+bins)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/build-image.sh -o %s: %v\n%s", out, err, logs.String())
	}
	t.Logf("built %s in %v: %s", out, time.Since(start).Round(time.Millisecond), strings.TrimSpace(logs.String()))
	return readArchive(t, out)
}

func readArchive(t *testing.T, path string) *ociArchive {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arch := &ociArchive{path: path, blobs: map[string][]byte{}}
	tr := tar.NewReader(f)
	var indexJSON []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch {
		case name == "index.json":
			indexJSON = data
		case strings.HasPrefix(name, "blobs/sha256/"):
			arch.blobs["sha256:"+strings.TrimPrefix(name, "blobs/sha256/")] = data
		}
	}
	mustJSON(t, indexJSON, &arch.index)
	if len(arch.index.Manifests) != 1 {
		t.Fatalf("%s: index has %d manifests, want 1", path, len(arch.index.Manifests))
	}
	m := arch.index.Manifests[0]
	arch.manifestDigest = m.Digest.String()
	mustJSON(t, arch.blobs[arch.manifestDigest], &arch.manifest)
	mustJSON(t, arch.blobs[arch.manifest.Config.Digest.String()], &arch.config)
	return arch
}

func mustJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, data)
	}
}

func checkContract(t *testing.T, a *ociArchive) {
	if got := a.index.Manifests[0].Annotations[ocispec.AnnotationRefName]; got != imageRef {
		t.Errorf("index %s = %q, want %q", ocispec.AnnotationRefName, got, imageRef)
	}
	c := a.config.Config
	if c.User != "65532:65532" {
		t.Errorf("User = %q", c.User)
	}
	if want := []string{"/usr/local/bin/oxios-init", "--"}; !reflect.DeepEqual(c.Entrypoint, want) {
		t.Errorf("Entrypoint = %q, want %q", c.Entrypoint, want)
	}
	if want := []string{"/usr/local/bin/oxios-demo"}; !reflect.DeepEqual(c.Cmd, want) {
		t.Errorf("Cmd = %q, want %q", c.Cmd, want)
	}
	if c.StopSignal != "SIGTERM" {
		t.Errorf("StopSignal = %q", c.StopSignal)
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.revision"} {
		if c.Labels[l] == "" {
			t.Errorf("label %s missing", l)
		}
	}
	env := strings.Join(c.Env, "\n")
	for _, e := range []string{"OXIOS_INIT_REWRITE=15:2", "OXIOS_INIT_READINESS=http://127.0.0.1:4200/health/ready", "OXIOS_INIT_LIVENESS=http://127.0.0.1:4200/health"} {
		if !strings.Contains(env, e) {
			t.Errorf("Env lacks %s:\n%s", e, env)
		}
	}
	if a.config.Created == nil || !a.config.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("created = %v, want the epoch (--timestamp 0)", a.config.Created)
	}

	// The one layer: both binaries executable, /data owned by the user.
	if len(a.manifest.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(a.manifest.Layers))
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.blobs[a.manifest.Layers[0].Digest.String()]))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = h
	}
	for _, bin := range []string{"usr/local/bin/oxios-init", "usr/local/bin/oxios-demo"} {
		h := files[bin]
		if h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 != 0o111 || h.Uid != 0 {
			t.Errorf("%s in the layer: %+v, want a root-owned executable", bin, h)
		}
	}
	if h := files["data"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("data in the layer: %+v, want a directory owned by 65532:65532", h)
	}
	for name, h := range files {
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s has mtime %v, want the epoch", name, h.ModTime)
		}
	}
}

func checkImport(t *testing.T, archive string) {
	addr := ctrtest.Start(t)
	c, err := containerd.New(addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "oxios-demo-test")
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := c.Import(ctx, f)
	if err != nil {
		t.Fatalf("import %s: %v", archive, err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	if _, err := c.GetImage(ctx, imageRef); err != nil {
		t.Fatalf("containerd has no %s after importing %s (imported %q): %v", imageRef, archive, names, err)
	}
}

// TestImageFromFreshClone is the contract as stated: two builds of the same
// commit, each `make build` + scripts/build-image.sh in a fresh clone of
// HEAD (after `make clean` the second time), give the same manifest digest.
// The Go build cache is shared, as on any machine; that the compiler's
// output is reproducible is Go's guarantee with -trimpath -buildvcs=false.
func TestImageFromFreshClone(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "buildah")
	testenv.RequireTool(t, "git")
	testenv.RequireTool(t, "make")
	clone := filepath.Join(t.TempDir(), "oxios")
	runIn(t, "", "git", "clone", "--quiet", "--shared", testenv.RepoRoot(t), clone)

	var digests []string
	for i := 0; i < 2; i++ {
		if i > 0 {
			runIn(t, clone, "make", "-s", "clean")
		}
		runIn(t, clone, "make", "-s", "build")
		out := filepath.Join(clone, "build", "oxios-image.tar")
		runIn(t, clone, "bash", "scripts/build-image.sh")
		digests = append(digests, readArchive(t, out).manifestDigest)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two fresh builds of the same commit differ: %s vs %s", digests[0], digests[1])
	}
	t.Logf("manifest %s, both builds", digests[0])
}

func runIn(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
}
