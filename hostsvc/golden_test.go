package hostsvc

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// -update rewrites the golden files and the shipped files under deploy/
// from the code (also: `go generate ./hostsvc`).
var update = flag.Bool("update", false, "rewrite golden files and deploy/ files")

// hostileDir holds every character class the old layer refused or did not
// escape: spaces, %, $, both quotes, a backslash, non-ASCII, a tab.
const hostileDir = "/opt/my apps/100% $HOME \"q\" 'a' back\\slash é日本\t/bin"

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./hostsvc -run %s -update` to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s drifted from the code; if the change is intended, run `go generate ./hostsvc`\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// deploySpec is the spec of the shipped files: the binary where `make
// install`-style setups put it, the system config path of `oxios start`.
var deploySpec = Spec{Binary: "/usr/local/bin/oxios", Config: "/etc/oxios/config.toml"}

// TestDeployFilesMatchCode fails when deploy/systemd or deploy/launchd and
// the renderers drift apart.
func TestDeployFilesMatchCode(t *testing.T) {
	unit, err := RenderUnit(deploySpec)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("..", "deploy", "systemd", UnitName), unit)
	pl, err := RenderPlist(deploySpec, "/Library/Logs/oxios")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("..", "deploy", "launchd", Label+".plist"), pl)
}

func goldenSpecs() map[string]Spec {
	return map[string]Spec{
		"unit-system.golden": {Binary: "/usr/local/bin/oxios", Config: "/etc/oxios/config.toml"},
		"unit-user.golden":   {Binary: "/home/ada/.local/bin/oxios", Config: "/home/ada/.config/oxios/config.toml", User: true},
		"unit-hostile.golden": {Binary: "/opt/my apps/100% é 日本/oxios", Config: hostileDir + "/config.toml",
			Grace: 45 * time.Second, Watchdog: 30 * time.Second, RestartDelay: 1500 * time.Millisecond},
		"unit-wrapped.golden": {Binary: hostileDir + "/oxios", Config: "/etc/oxios/config.toml"},
	}
}

func TestUnitGolden(t *testing.T) {
	for name, spec := range goldenSpecs() {
		got, err := RenderUnit(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkGolden(t, filepath.Join("testdata", name), got)
	}
}

func TestPlistGolden(t *testing.T) {
	for name, c := range map[string]struct {
		spec Spec
		logs string
	}{
		"plist-system.golden":  {Spec{Binary: "/usr/local/bin/oxios", Config: "/etc/oxios/config.toml"}, "/Library/Logs/oxios"},
		"plist-hostile.golden": {Spec{Binary: hostileDir + "/<&>]]>/oxios", Config: "/Users/a&b/<cfg>.toml", User: true, Grace: 45 * time.Second}, "/Users/a&b/Library/Logs/oxios"},
	} {
		got, err := RenderPlist(c.spec, c.logs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkGolden(t, filepath.Join("testdata", name), got)
	}
}
