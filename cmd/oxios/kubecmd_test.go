package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/kube"
)

// `oxios kube generate --config F` prints the generator's output for F, and
// a bad F fails with its file and key, like every command that reads it.
func TestKubeGenerate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	text := "[image]\nref = \"registry.example/d:1\"\n[container]\nport = 8080\n"
	if err := os.WriteFile(good, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(good, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := kube.Generate(cfg, &want); err != nil {
		t.Fatal(err)
	}
	out, errs, code := oxios(t, "kube", "generate", "--config", good)
	if code != exitOK || out != want.String() || errs != "" {
		t.Errorf("exit %d, stderr %q, stdout equal to kube.Generate: %v", code, errs, out == want.String())
	}
	if !strings.Contains(out, `image: "registry.example/d:1"`) || !strings.Contains(out, "containerPort: 8080") {
		t.Errorf("stdout lacks the config's image and port:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[kubernetes]\nenv = [\"NOEQUALS\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code = oxios(t, "kube", "generate", "--config", bad)
	if code != exitUsage || out != "" || !strings.Contains(errs, bad+":2") || !strings.Contains(errs, "kubernetes.env") {
		t.Errorf("bad config: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
