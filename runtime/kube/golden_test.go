package kube

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/a7garden/oxios/runtime/config"
)

// The shipped deploy/kubernetes manifests are this package's output for
// deploy/oxios.toml; regenerate them after a change to either
// (TestDeployManifestsMatchConfig fails until you do).
//go:generate go test -run ^TestDeployManifestsMatchConfig$ -update .

var update = flag.Bool("update", false, "rewrite deploy/kubernetes/*.yaml from deploy/oxios.toml")

// deployConfig is deploy/oxios.toml, named as the manifests' header names it.
func deployConfig(t *testing.T) *config.Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "oxios.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("deploy/oxios.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDeployManifestsMatchConfig fails when deploy/kubernetes and the
// generator's output for deploy/oxios.toml drift apart.
func TestDeployManifestsMatchConfig(t *testing.T) {
	cfg := deployConfig(t)
	for file, gen := range map[string]func(*config.Config, *bytes.Buffer) error{
		"deployment.yaml": func(c *config.Config, b *bytes.Buffer) error { return Deployment(c, b) },
		"service.yaml":    func(c *config.Config, b *bytes.Buffer) error { return Service(c, b) },
	} {
		var got bytes.Buffer
		if err := gen(cfg, &got); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		path := filepath.Join("..", "..", "deploy", "kubernetes", file)
		if *update {
			if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s drifted from deploy/oxios.toml; if the change is intended, run `go generate ./runtime/kube`\n--- got ---\n%s", path, got.Bytes())
		}
	}
}
