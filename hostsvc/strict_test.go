//go:build linux

package hostsvc

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// `oxios install` (a system service, run as root at every boot) refuses a
// binary or config another user owns or can write, naming it and the fix;
// owned by root and not writable by others, they are accepted (--dry-run:
// nothing is installed either way).
func TestInstallRefusesBinaryOthersCanWrite(t *testing.T) {
	name, uid, gid := testenv.TempUser(t)
	src := testenv.Bin(t, "oxios")
	dir, err := os.MkdirTemp("", "oxinst")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "oxios")
	copyFile(t, src, bin)
	cfg := filepath.Join(dir, "oxios.toml")
	os.WriteFile(cfg, []byte("[container]\nport = 5001\n"), 0o644)
	install := func(extra ...string) (int, string) {
		cmd := exec.Command(bin, append([]string{"install", "--dry-run", "--config", cfg}, extra...)...)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &errb
		return testenv.ExitCode(t, cmd.Run()), errb.String()
	}
	if code, stderr := install(); code != 0 {
		t.Fatalf("root-owned 0755 binary: exit %d\n%s", code, stderr)
	}
	for what, change := range map[string]func(){
		"owned by " + name:      func() { os.Chown(bin, uid, gid) },
		"writable by its group": func() { os.Chmod(bin, 0o775) },
	} {
		change()
		code, stderr := install()
		if code == 0 || !strings.Contains(stderr, bin+" is "+what) {
			t.Errorf("binary %s: exit %d, want a refusal naming %s\n%s", what, code, bin, stderr)
		}
		os.Chown(bin, 0, 0)
		os.Chmod(bin, 0o755)
	}
	// The config too, for the system service; a --user service runs as
	// its user, whose config it is.
	os.Chown(cfg, uid, gid)
	if code, stderr := install(); code == 0 || !strings.Contains(stderr, cfg+" is owned by "+name) {
		t.Errorf("config owned by %s, system service: exit %d, want a refusal naming %s\n%s", name, code, cfg, stderr)
	}
	if code, stderr := install("--user"); code != 0 {
		t.Errorf("config owned by %s, --user service: exit %d\n%s", name, code, stderr)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
