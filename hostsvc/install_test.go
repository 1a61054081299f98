package hostsvc

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// recorder stands in for systemctl/launchctl, which cannot run on a host
// whose PID 1 is not systemd; the boot test runs the real ones.
type recorder struct {
	calls [][]string
	fail  map[string]error // by "name arg0"
}

func (r *recorder) run(name string, args ...string) ([]byte, error) {
	call := append([]string{name}, args...)
	r.calls = append(r.calls, call)
	if err := r.fail[strings.Join(call[:2], " ")]; err != nil {
		return []byte("boom from " + name), err
	}
	return nil, nil
}

func (r *recorder) joined() []string {
	var s []string
	for _, c := range r.calls {
		s = append(s, strings.Join(c, " "))
	}
	return s
}

func newTestInstaller(t *testing.T, m Manager) (*Installer, *recorder, *bytes.Buffer) {
	rec := &recorder{}
	out := &bytes.Buffer{}
	dir := t.TempDir()
	name := UnitName
	if m == Launchd {
		name = Label + ".plist"
	}
	return &Installer{Manager: m, Path: filepath.Join(dir, "etc", name), LogDir: filepath.Join(dir, "logs"),
		UID: 501, Run: rec.run, Out: out}, rec, out
}

var testSpec = Spec{Binary: "/usr/local/bin/oxios", Config: "/etc/oxios/config.toml"}

func TestInstallSystemd(t *testing.T) {
	in, rec, out := newTestInstaller(t, Systemd)
	if err := in.Install(testSpec, Options{Now: true}); err != nil {
		t.Fatal(err)
	}
	want, _ := RenderUnit(testSpec)
	got, err := os.ReadFile(in.Path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("unit file = %q, %v", got, err)
	}
	if st, _ := os.Stat(in.Path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode())
	}
	if w := []string{"systemctl daemon-reload", "systemctl enable --now oxiosd.service"}; !slices.Equal(rec.joined(), w) {
		t.Errorf("ran %q, want %q", rec.joined(), w)
	}
	if !strings.Contains(out.String(), "wrote "+in.Path) {
		t.Errorf("output %q", out)
	}

	// A second install with another spec replaces the first cleanly: same
	// inode path, new content, no temp file left behind.
	spec2 := testSpec
	spec2.Config = "/srv/other config.toml"
	rec.calls = nil
	if err := in.Install(spec2, Options{}); err != nil {
		t.Fatal(err)
	}
	want2, _ := RenderUnit(spec2)
	if got, _ := os.ReadFile(in.Path); !bytes.Equal(got, want2) {
		t.Errorf("reinstall left %q", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(in.Path))
	if len(entries) != 1 {
		t.Errorf("directory holds %v, want only the unit", entries)
	}
	// Without --now the service is enabled at boot but not started.
	if w := []string{"systemctl daemon-reload", "systemctl enable oxiosd.service"}; !slices.Equal(rec.joined(), w) {
		t.Errorf("without --now ran %q, want %q", rec.joined(), w)
	}
	// --no-enable writes the file and reloads, nothing more.
	rec.calls = nil
	if err := in.Install(spec2, Options{NoEnable: true}); err != nil {
		t.Fatal(err)
	}
	if w := []string{"systemctl daemon-reload"}; !slices.Equal(rec.joined(), w) {
		t.Errorf("with --no-enable ran %q, want %q", rec.joined(), w)
	}
}

func TestInstallUserSystemd(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Systemd)
	in.User = true
	spec := testSpec
	spec.User = true
	if err := in.Install(spec, Options{Now: true}); err != nil {
		t.Fatal(err)
	}
	if w := []string{"systemctl --user daemon-reload", "systemctl --user enable --now oxiosd.service"}; !slices.Equal(rec.joined(), w) {
		t.Errorf("ran %q, want %q", rec.joined(), w)
	}
}

func TestInstallRefusesMismatchedUser(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Systemd)
	spec := testSpec
	spec.User = true
	if err := in.Install(spec, Options{}); err == nil || len(rec.calls) != 0 {
		t.Fatalf("user spec on a system installer: %v after %q", err, rec.calls)
	}
	if _, err := os.Stat(in.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file written anyway: %v", err)
	}
}

func TestInstallDryRun(t *testing.T) {
	for _, m := range []Manager{Systemd, Launchd} {
		in, rec, out := newTestInstaller(t, m)
		if err := in.Install(testSpec, Options{DryRun: true, Now: true}); err != nil {
			t.Fatal(err)
		}
		want, _ := in.Render(testSpec)
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("%s: dry run printed %q, want the file", m, out)
		}
		if _, err := os.Stat(in.Path); !errors.Is(err, fs.ErrNotExist) || len(rec.calls) != 0 {
			t.Errorf("%s: dry run changed something: %v, %q", m, err, rec.calls)
		}
	}
}

func TestInstallLaunchd(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Launchd)
	rec.fail = map[string]error{"launchctl bootout": errors.New("exit status 3")} // not loaded yet
	in.User = true
	spec := testSpec
	spec.User = true
	if err := in.Install(spec, Options{Now: true}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"launchctl bootout gui/501/com.a7garden.oxios",
		"launchctl enable gui/501/com.a7garden.oxios",
		"launchctl bootstrap gui/501 " + in.Path,
		"launchctl kickstart gui/501/com.a7garden.oxios",
	}
	if !slices.Equal(rec.joined(), want) {
		t.Errorf("ran %q, want %q", rec.joined(), want)
	}
	if _, err := os.Stat(in.LogDir); err != nil {
		t.Errorf("log dir: %v", err)
	}
}

func TestInstallCommandError(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Systemd)
	rec.fail = map[string]error{"systemctl daemon-reload": errors.New("exit status 1")}
	err := in.Install(testSpec, Options{})
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "boom from systemctl") {
		t.Fatalf("err = %v, want a CommandError with the output", err)
	}
	if _, err := os.Stat(in.Path); err != nil {
		t.Errorf("the unit should be in place even when the reload failed: %v", err)
	}
}

func TestUninstall(t *testing.T) {
	in, rec, out := newTestInstaller(t, Systemd)
	if err := in.Uninstall(Options{}); err != nil || !strings.Contains(out.String(), "not installed") {
		t.Fatalf("uninstall of nothing: %v, %q", err, out)
	}
	if err := in.Install(testSpec, Options{}); err != nil {
		t.Fatal(err)
	}
	rec.calls = nil
	if err := in.Uninstall(Options{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(in.Path); err != nil || len(rec.calls) != 0 {
		t.Fatalf("dry run removed or ran: %v %q", err, rec.calls)
	}
	rec.fail = map[string]error{"systemctl reset-failed": errors.New("exit status 1")}
	if err := in.Uninstall(Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"systemctl disable --now oxiosd.service", "systemctl daemon-reload", "systemctl reset-failed oxiosd.service"}
	if !slices.Equal(rec.joined(), want) {
		t.Errorf("ran %q, want %q", rec.joined(), want)
	}
	if _, err := os.Stat(in.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unit still there: %v", err)
	}
}

// TestInstallWithoutPrivileges re-runs this test binary as nobody (65534)
// against a root-owned directory: the error must be a PathError that
// errors.Is(fs.ErrPermission), which is what makes the CLI say "sudo",
// and uninstall must refuse before it stops anything.
func TestInstallWithoutPrivileges(t *testing.T) {
	if dir := os.Getenv("HOSTSVC_NOPRIV_DIR"); dir != "" {
		rec := &recorder{}
		in := &Installer{Manager: Systemd, Path: filepath.Join(dir, UnitName), Run: rec.run, Out: &bytes.Buffer{}}
		var pe *PathError
		err := in.Install(testSpec, Options{})
		if !errors.As(err, &pe) || !errors.Is(err, fs.ErrPermission) || pe.Path != in.Path {
			t.Fatalf("install as nobody: %v, want a permission PathError naming %s", err, in.Path)
		}
		err = in.Uninstall(Options{})
		if !errors.As(err, &pe) || !errors.Is(err, fs.ErrPermission) || len(rec.calls) != 0 {
			t.Fatalf("uninstall as nobody: %v after running %q", err, rec.calls)
		}
		return
	}
	testenv.RequireRoot(t) // to switch to nobody
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	if err := os.WriteFile(filepath.Join(dir, UnitName), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The test binary's own directory is private to root: run a copy.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir+"-bin", "hostsvc.test")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(exe)) })
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestInstallWithoutPrivileges$", "-test.v")
	cmd.Env = append(os.Environ(), "HOSTSVC_NOPRIV_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

func TestUninstallLaunchd(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Launchd)
	if err := in.Install(testSpec, Options{}); err != nil {
		t.Fatal(err)
	}
	rec.calls = nil
	if err := in.Uninstall(Options{}); err != nil {
		t.Fatal(err)
	}
	if w := []string{"launchctl bootout system/com.a7garden.oxios"}; !slices.Equal(rec.joined(), w) {
		t.Errorf("ran %q, want %q", rec.joined(), w)
	}
	if _, err := os.Stat(in.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("plist still there: %v", err)
	}
}

func TestInstallWithoutServiceManager(t *testing.T) {
	in, rec, out := newTestInstaller(t, Systemd)
	in.Running = func() bool { return false }
	if err := in.Install(testSpec, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(in.Path); err != nil || len(rec.calls) != 0 || !strings.Contains(out.String(), "not running") {
		t.Errorf("want the file written, nothing run, a note: %v %q %q", err, rec.calls, out)
	}
	if err := in.Install(testSpec, Options{Now: true}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("--now without systemd: %v, want ErrNotRunning", err)
	}
	if err := in.Uninstall(Options{}); err != nil || len(rec.calls) != 0 {
		t.Errorf("uninstall without systemd: %v after running %q", err, rec.calls)
	}
	if _, err := os.Stat(in.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unit still there: %v", err)
	}
}
