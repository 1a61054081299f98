package hostsvc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// hostileNames are directory names the oxios binary and config may live
// under. Each becomes a real directory holding a real executable, because
// systemd-analyze verify checks that ExecStart's binary exists.
var hostileNames = []string{
	"dir with spaces",
	"100% %n %%",
	"$HOME ${X} $$ $",
	`"double" 'single'`,
	`back\slash \\ \n`,
	"é 日本 😀",
	"tab\there",
	"ctrl\x01\x1b\x7f",
	"bad\xff\xfeutf8",
	"; semi ;",
	"-dash @at +plus !bang :colon |pipe",
	"#hash [Service] =eq",
	"all of it: % $ \" ' \\ é\t;",
}

// analyzeVerify runs systemd-analyze verify on unit (named oxiosd.service in
// a fresh directory) and returns its output and whether it passed.
func analyzeVerify(t *testing.T, unit []byte, user bool) (string, bool) {
	t.Helper()
	tool := testenv.RequireTool(t, "systemd-analyze")
	dir := t.TempDir()
	path := filepath.Join(dir, UnitName)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"verify", "--man=no", path}
	cmd := exec.Command(tool, args...)
	if user {
		// A user manager needs a runtime directory even to verify.
		cmd = exec.Command(tool, append([]string{"--user"}, args...)...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir())
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

func makeExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestSystemdAnalyzeVerifyHostilePaths(t *testing.T) {
	base := t.TempDir()
	for i, name := range hostileNames {
		bin := filepath.Join(base, name, "oxios")
		makeExecutable(t, bin)
		cfg := filepath.Join(base, name, "config "+name+".toml")
		for _, user := range []bool{false, true} {
			spec := Spec{Binary: bin, Config: cfg, User: user, Watchdog: 30e9}
			unit, err := RenderUnit(spec)
			if err != nil {
				t.Fatalf("%d %q: %v", i, name, err)
			}
			if out, ok := analyzeVerify(t, unit, user); !ok || out != "" {
				t.Errorf("%d %q (user=%v): systemd-analyze verify failed:\n%s\nunit:\n%s", i, name, user, out, unit)
			}
		}
	}
}

// TestSystemdAnalyzeVerifyCatchesBadUnits proves the check is not a no-op:
// what the old layer would have written for these paths, and a
// mis-escaped line, are refused (or, for an unknown escape, which systemd
// tolerates, at least reported) by systemd-analyze verify.
func TestSystemdAnalyzeVerifyCatchesBadUnits(t *testing.T) {
	base := t.TempDir()
	bin := filepath.Join(base, `"double" 'single'`, "oxios")
	makeExecutable(t, bin)
	good, err := RenderUnit(Spec{Binary: bin, Config: "/etc/oxios/config.toml"})
	if err != nil {
		t.Fatal(err)
	}
	start, _ := JoinExecLine(execArgv(Spec{Binary: bin, Config: "/etc/oxios/config.toml"}.StartArgs()))
	for name, bad := range map[string]string{
		"raw path":        "ExecStart=" + bin + " start --foreground",
		"unterminated":    "ExecStart=/bin/true \"unterminated",
		"missing binary":  "ExecStart=" + filepath.Join(base, "nope", "oxios") + " start",
		"unknown escape":  `ExecStart=/bin/true "\q"`,
		"quoted bad path": `ExecStart="` + strings.ReplaceAll(bin, `"`, `\"`) + `" start`,
	} {
		unit := strings.Replace(string(good), "ExecStart="+start, bad, 1)
		if unit == string(good) {
			t.Fatalf("%s: ExecStart line not found", name)
		}
		if out, ok := analyzeVerify(t, []byte(unit), false); ok && out == "" {
			t.Errorf("%s: systemd-analyze verify accepted without a word:\n%s\noutput: %s", name, unit, out)
		}
	}
}
