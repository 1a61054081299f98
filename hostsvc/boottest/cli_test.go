package boottest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// TestPrivilegeHints runs the real `oxios install` and `oxios uninstall` in
// a private mount namespace whose /etc/systemd/system is a scratch tmpfs
// (the host's is never touched): as nobody, the error says what to run and
// "run with sudo"; as root on a read-only directory, it does not say sudo.
func TestPrivilegeHints(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "unshare")
	testenv.RequireTool(t, "setpriv")
	// The systemd package creates the directory the test mounts over.
	testenv.RequireTool(t, "systemctl")
	if _, err := os.Stat("/etc/systemd/system"); err != nil {
		t.Fatalf("systemd is installed but has no unit directory to mount over: %v", err)
	}
	// A copy nobody can execute (the build tree may be private to root).
	dir, err := os.MkdirTemp("", "oxios-hint-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "oxios")
	testenv.CopyFile(t, testenv.Bin(t, "oxios"), bin, 0o755)

	const unit = "/etc/systemd/system/oxiosd.service"
	for _, tc := range []struct {
		name, setup, as, cmd string
		sudo                 bool // the hint must (true) or must not (false) say "run with sudo"
		keep                 bool // the unit file must still exist afterwards
	}{
		{"install as nobody", "", "nobody", "install --config /etc/oxios/config.toml", true, false},
		{"uninstall as nobody", "touch " + unit, "nobody", "uninstall", true, true},
		{"install as root, read-only", "mount -o remount,ro /etc/systemd/system", "root", "install --config /etc/oxios/config.toml", false, false},
		{"uninstall as root, read-only", "touch " + unit + " && mount -o remount,ro /etc/systemd/system", "root", "uninstall", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := bin + " " + tc.cmd
			if tc.as == "nobody" {
				run = "setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent " + run
			}
			script := "set -e; mount -t tmpfs -o mode=0755 oxios-hint /etc/systemd/system\n"
			if tc.setup != "" {
				script += tc.setup + "\n"
			}
			script += "rc=0; " + run + " || rc=$?\n"
			script += "if [ -e " + unit + " ]; then echo UNIT-PRESENT; fi\nexit $rc\n"
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			out, err := cmd.CombinedOutput()
			s := string(out)
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("want exit 1, got %v:\n%s", err, s)
			}
			if got := strings.Contains(s, "run with sudo"); got != tc.sudo {
				t.Errorf("says \"run with sudo\" = %v, want %v:\n%s", got, tc.sudo, s)
			}
			if tc.sudo && !strings.Contains(s, "sudo "+bin+" "+strings.Fields(tc.cmd)[0]) {
				t.Errorf("the hint should spell out the command to run:\n%s", s)
			}
			if !tc.sudo && strings.Contains(s, "sudo") {
				t.Errorf("root was told about sudo:\n%s", s)
			}
			if !strings.Contains(s, unit) && !strings.Contains(s, "/etc/systemd/system") {
				t.Errorf("the error should name the path:\n%s", s)
			}
			if got := strings.Contains(s, "UNIT-PRESENT"); got != tc.keep {
				t.Errorf("unit file present afterwards = %v, want %v:\n%s", got, tc.keep, s)
			}
		})
	}
}
