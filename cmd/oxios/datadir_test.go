//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// TestCLIDataDirNotWritable: an existing data dir the daemon's user
// cannot write (an admin's `mkdir -p` as root) fails start on the host
// with the exit code the systemd unit does not restart on, naming the host
// path, owner, mode, the daemon's uid and the fix; nothing is left behind.
// Once fixed as told, start works.
func TestCLIDataDirNotWritable(t *testing.T) {
	testenv.RequireRoot(t) // containerd and chown
	c := newCLI(t, "")
	data := filepath.Join(c.dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	_, errs, code := c.run("start")
	if code != exitNoRestart {
		t.Fatalf("start: exit %d, want %d\n%s", code, exitNoRestart, errs)
	}
	for _, want := range []string{data, "owner 0:0", "mode 0755", "65532:65532", "chown -R 65532:65532 " + data} {
		if !strings.Contains(errs, want) {
			t.Errorf("start's error lacks %q:\n%s", want, errs)
		}
	}
	if c.hasContainer() {
		t.Error("a container was left behind")
	}
	if err := os.Chown(data, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := c.run("start"); code != 0 {
		t.Fatalf("start after the fix: exit %d\n%s\n%s", code, out, errs)
	}
	if _, errs, code := c.run("stop"); code != 0 {
		t.Fatalf("stop: %d %s", code, errs)
	}
}
