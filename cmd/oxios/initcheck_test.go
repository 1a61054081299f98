//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// TestBadInitFailsBeforeContainerd: a bad init.* value fails `oxios start`
// with file:line:key before any containerd call. The socket named in the
// config does not exist, so a CLI that reached for containerd first would
// fail with "containerd not reachable" (exit 4) instead.
func TestBadInitFailsBeforeContainerd(t *testing.T) {
	bin := testenv.Bin(t, "oxios")
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{"[init]\nreadiness = \"tcp://127.0.0.1\"\n", ":4: key init.readiness: "},
		{"[init]\nrewrite = \"15:BOGUS\"\n", ":4: key init.rewrite: "},
		{"[init]\nrestart = \"sometimes\"\n", ":4: key init.restart: "},
	} {
		cfg := filepath.Join(dir, "oxios.toml")
		text := "[containerd]\naddress = \"" + filepath.Join(dir, "absent.sock") + "\"\n" + c.body
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "start", "--config", cfg)
		out, err := cmd.CombinedOutput()
		code := testenv.ExitCode(t, err)
		if code == 0 || code == 4 || !strings.Contains(string(out), cfg+c.want) || strings.Contains(string(out), "containerd not reachable") {
			t.Errorf("%q: exit %d, output:\n%s\nwant a config error (not 0, not 4: containerd unreachable) naming %s%s", c.body, code, out, cfg, c.want)
		}
	}
}
