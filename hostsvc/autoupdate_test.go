package hostsvc

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"howett.net/plist"

	"github.com/a7garden/oxios/internal/testenv"
)

var autoSpec = Spec{Binary: "/usr/local/bin/oxios", Config: "/etc/oxios/config.toml", AutoUpdate: DefaultCalendar}

func TestUpgradeUnitsGolden(t *testing.T) {
	for name, spec := range map[string]Spec{
		"upgrade-system": autoSpec,
		"upgrade-user":   {Binary: "/home/ada/.local/bin/oxios", Config: "/home/ada/.config/oxios/config.toml", User: true, AutoUpdate: "Mon *-*-* 03:30"},
		"upgrade-hostile": {Binary: hostileDir + "/oxios", Config: hostileDir + "/config.toml",
			AutoUpdate: "hourly"},
	} {
		svc, err := RenderUpgradeService(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkGolden(t, filepath.Join("testdata", name+".service.golden"), svc)
		timer, err := RenderUpgradeTimer(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkGolden(t, filepath.Join("testdata", name+".timer.golden"), timer)
	}
	pl, err := RenderUpgradePlist(Spec{Binary: "/usr/local/bin/oxios", Config: "/etc/oxios/config.toml",
		AutoUpdate: "daily", AutoUpdateOffset: 17 * time.Minute}, "/Library/Logs/oxios")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "upgrade-plist.golden"), pl)
}

// TestUpgradeDeployFilesMatchCode: the shipped timer, service and plist.
func TestUpgradeDeployFilesMatchCode(t *testing.T) {
	s := deploySpec
	s.AutoUpdate = DefaultCalendar
	svc, err := RenderUpgradeService(s)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("..", "deploy", "systemd", UpgradeServiceName), svc)
	timer, err := RenderUpgradeTimer(s)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("..", "deploy", "systemd", UpgradeTimerName), timer)
	pl, err := RenderUpgradePlist(s, "/Library/Logs/oxios")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("..", "deploy", "launchd", UpgradeLabel+".plist"), pl)
}

// analyzeVerifyDir runs systemd-analyze verify on the given units, all in
// one fresh directory (a timer is checked against its service there).
func analyzeVerifyDir(t *testing.T, units map[string][]byte, user bool, check ...string) (string, bool) {
	t.Helper()
	tool := testenv.RequireTool(t, "systemd-analyze")
	dir := t.TempDir()
	args := []string{"verify", "--man=no"}
	if user {
		args = append([]string{"--user"}, args...)
	}
	for name, data := range units {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range check {
		args = append(args, filepath.Join(dir, name))
	}
	cmd := exec.Command(tool, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

func upgradeUnits(t *testing.T, s Spec) map[string][]byte {
	t.Helper()
	main, err := RenderUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := RenderUpgradeService(s)
	if err != nil {
		t.Fatal(err)
	}
	timer, err := RenderUpgradeTimer(s)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{UnitName: main, UpgradeServiceName: svc, UpgradeTimerName: timer}
}

func TestUpgradeUnitsSystemdAnalyzeVerify(t *testing.T) {
	base := t.TempDir()
	for _, name := range append(hostileNames, "plain") {
		bin := filepath.Join(base, name, "oxios")
		makeExecutable(t, bin)
		for _, cal := range []string{"daily", "hourly", "Mon *-*-* 03:30", "*-*-* 00/6:00"} {
			for _, user := range []bool{false, true} {
				s := Spec{Binary: bin, Config: filepath.Join(base, name, "c.toml"), User: user, AutoUpdate: cal}
				units := upgradeUnits(t, s)
				if out, ok := analyzeVerifyDir(t, units, user, UpgradeTimerName, UpgradeServiceName); !ok || out != "" {
					t.Errorf("%q %q user=%v: systemd-analyze verify:\n%s\n%s\n%s", name, cal, user, out, units[UpgradeServiceName], units[UpgradeTimerName])
				}
			}
		}
	}
}

// TestUpgradeTimerVerifyCatchesBadCalendar proves the check above is not a
// no-op for the calendar: systemd reports what it cannot parse.
func TestUpgradeTimerVerifyCatchesBadCalendar(t *testing.T) {
	units := upgradeUnits(t, Spec{Binary: "/bin/true", Config: "/etc/oxios/config.toml", AutoUpdate: "every full moon"})
	if out, ok := analyzeVerifyDir(t, units, false, UpgradeTimerName); ok && out == "" {
		t.Fatalf("a bad calendar passed systemd-analyze verify:\n%s", units[UpgradeTimerName])
	}
	if _, err := RenderUpgradeTimer(Spec{AutoUpdate: "daily\n[Service]"}); err == nil {
		t.Fatal("a calendar with a newline was rendered")
	}
}

func TestUpgradePlistRoundTrip(t *testing.T) {
	for _, name := range append(hostileNames, "<tag> & ]]>") {
		s := Spec{Binary: "/opt/" + name + "/oxios", Config: "/etc/" + name + ".toml", AutoUpdate: "weekly", AutoUpdateOffset: 42 * time.Minute}
		data, err := RenderUpgradePlist(s, "/Users/x/"+name)
		if strings.ContainsAny(name, "\x01\x1b\x7f\xff") {
			if err == nil {
				t.Errorf("%q: rendered a plist XML cannot hold", name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		var got UpgradeJob
		if _, err := plist.Unmarshal(data, &got); err != nil {
			t.Fatalf("%q: decode: %v\n%s", name, err, data)
		}
		want, _ := UpgradeJobFor(s, "/Users/x/"+name)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: round trip\n got %#v\nwant %#v", name, got, want)
		}
		var raw map[string]any
		if _, err := plist.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		cal, _ := raw["StartCalendarInterval"].(map[string]any)
		args, _ := raw["ProgramArguments"].([]any)
		if raw["Label"] != UpgradeLabel || len(args) != 5 || args[1] != "upgrade" || args[2] != "--if-newer" ||
			cal["Minute"] != uint64(42) || cal["Hour"] != uint64(0) || cal["Weekday"] != uint64(1) || len(cal) != 3 {
			t.Errorf("%q: decoded %v", name, raw)
		}
	}
}

func TestLaunchdCalendar(t *testing.T) {
	p := func(v int) *int { return &v }
	off := 7 * time.Minute
	for cal, want := range map[string]CalendarInterval{
		"hourly":  {Minute: p(7)},
		"daily":   {Minute: p(7), Hour: p(0)},
		"weekly":  {Minute: p(7), Hour: p(0), Weekday: p(1)},
		"monthly": {Minute: p(7), Hour: p(0), Day: p(1)},
		"03:30":   {Minute: p(30), Hour: p(3)},
		"23:05":   {Minute: p(5), Hour: p(23)},
	} {
		got, err := launchdCalendar(cal, off)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %+v %v, want %+v", cal, got, err, want)
		}
	}
	for _, bad := range []string{"Mon *-*-* 03:30", "24:00", "3:60", "minutely", ""} {
		if _, err := launchdCalendar(bad, off); err == nil {
			t.Errorf("%q: accepted for launchd", bad)
		}
	}
}

// dirNames lists dir's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestInstallAutoUpdateSystemd(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Systemd)
	dir := filepath.Dir(in.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Someone else's unit in the same directory: never touched.
	other := filepath.Join(dir, "other.timer")
	os.WriteFile(other, []byte("[Timer]\n"), 0o644)
	if err := in.Install(autoSpec, Options{Now: true}); err != nil {
		t.Fatal(err)
	}
	if w := []string{"systemctl daemon-reload", "systemctl enable --now oxiosd.service oxios-upgrade.timer"}; !slices.Equal(rec.joined(), w) {
		t.Errorf("ran %q, want %q", rec.joined(), w)
	}
	for name, render := range map[string]func(Spec) ([]byte, error){UpgradeServiceName: RenderUpgradeService, UpgradeTimerName: RenderUpgradeTimer} {
		want, _ := render(autoSpec)
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != string(want) {
			t.Errorf("%s = %q, %v", name, got, err)
		}
	}
	// Reinstalled without --auto-update: the timer is disabled and its
	// files go; a running upgrade is left to finish.
	rec.calls = nil
	if err := in.Install(testSpec, Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"systemctl disable --now oxios-upgrade.timer", "systemctl daemon-reload", "systemctl enable oxiosd.service"}
	if !slices.Equal(rec.joined(), want) {
		t.Errorf("reinstall ran %q, want %q", rec.joined(), want)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"other.timer", UnitName}) {
		t.Errorf("after reinstall: %q", got)
	}
}

// TestUninstallRemovesAutoUpdate: the timer, its service and the daemon's
// unit go, in that order, and nothing else in the directory.
func TestUninstallRemovesAutoUpdate(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Systemd)
	if err := in.Install(autoSpec, Options{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(in.Path)
	keep := []string{"oxios-upgrade.timer.d", "oxios-upgrade.service.bak", "other.service"}
	for _, k := range keep {
		os.WriteFile(filepath.Join(dir, k), nil, 0o644)
	}
	rec.calls = nil
	if err := in.Uninstall(Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"systemctl disable --now oxios-upgrade.timer",
		"systemctl stop oxios-upgrade.service",
		"systemctl disable --now oxiosd.service",
		"systemctl daemon-reload",
		"systemctl reset-failed oxiosd.service",
	}
	if !slices.Equal(rec.joined(), want) {
		t.Errorf("ran %q, want %q", rec.joined(), want)
	}
	got := dirNames(t, dir)
	slices.Sort(keep)
	if !slices.Equal(got, keep) {
		t.Errorf("left %q, want only %q", got, keep)
	}
	// The update's files alone (the unit removed by hand) still uninstall.
	if err := in.Install(autoSpec, Options{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(in.Path)
	if err := in.Uninstall(Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, UpgradeTimerName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("timer left behind: %v", err)
	}
}

func TestInstallAutoUpdateLaunchd(t *testing.T) {
	in, rec, _ := newTestInstaller(t, Launchd)
	s := autoSpec
	s.AutoUpdateOffset = 5 * time.Minute
	if err := in.Install(s, Options{}); err != nil {
		t.Fatal(err)
	}
	up := filepath.Join(filepath.Dir(in.Path), UpgradeLabel+".plist")
	want := []string{
		"launchctl bootout system/com.a7garden.oxios",
		"launchctl enable system/com.a7garden.oxios",
		"launchctl bootstrap system " + in.Path,
		"launchctl bootout system/com.a7garden.oxios.upgrade",
		"launchctl enable system/com.a7garden.oxios.upgrade",
		"launchctl bootstrap system " + up,
	}
	if !slices.Equal(rec.joined(), want) {
		t.Errorf("ran %q, want %q", rec.joined(), want)
	}
	if data, err := os.ReadFile(up); err != nil || !strings.Contains(string(data), "<string>--if-newer</string>") {
		t.Fatalf("%s: %v\n%s", up, err, data)
	}
	rec.calls = nil
	if err := in.Uninstall(Options{}); err != nil {
		t.Fatal(err)
	}
	want = []string{"launchctl bootout system/com.a7garden.oxios.upgrade", "launchctl bootout system/com.a7garden.oxios"}
	if !slices.Equal(rec.joined(), want) {
		t.Errorf("uninstall ran %q, want %q", rec.joined(), want)
	}
	if got := dirNames(t, filepath.Dir(in.Path)); len(got) != 0 {
		t.Errorf("left %q", got)
	}
	// launchd cannot express every systemd calendar: refused before
	// anything is written.
	s.AutoUpdate = "Mon *-*-* 03:30"
	if err := in.Install(s, Options{}); err == nil {
		t.Fatal("a systemd-only calendar was installed for launchd")
	}
	if _, err := os.Stat(in.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused install wrote %s: %v", in.Path, err)
	}
}

func TestInstallAutoUpdateDryRun(t *testing.T) {
	in, rec, out := newTestInstaller(t, Systemd)
	if err := in.Install(autoSpec, Options{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	timer, _ := RenderUpgradeTimer(autoSpec)
	if !strings.Contains(out.String(), "# "+filepath.Join(filepath.Dir(in.Path), UpgradeTimerName)+"\n"+string(timer)) || len(rec.calls) != 0 {
		t.Errorf("dry run printed %q after running %q", out, rec.calls)
	}
	if _, err := os.Stat(filepath.Dir(in.Path)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dry run wrote: %v", err)
	}
}

// FuzzAutoUpdateCalendar: whatever --auto-update=CALENDAR holds, the timer
// either is refused or carries it on exactly one OnCalendar= line and
// nothing else changes (no line, section or setting injected); launchd's
// mapping either refuses it or yields times that exist.
func FuzzAutoUpdateCalendar(f *testing.F) {
	for _, c := range []string{"daily", "hourly", "weekly", "monthly", "03:30", "Mon *-*-* 03:30", "daily\n[Service]\nExecStart=/bin/evil", "\x00", "24:00", "0:00", "é"} {
		f.Add(c)
	}
	base, err := RenderUpgradeTimer(Spec{AutoUpdate: "X"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cal string) {
		timer, err := RenderUpgradeTimer(Spec{AutoUpdate: cal})
		if err == nil {
			esc := strings.ReplaceAll(cal, "%", "%%")
			want := strings.ReplaceAll(string(base), "(X)", "("+esc+")")
			want = strings.Replace(want, "OnCalendar=X\n", "OnCalendar="+esc+"\n", 1)
			if string(timer) != want || strings.Count(string(timer), "\n") != strings.Count(string(base), "\n") {
				t.Fatalf("calendar %q changed the timer beyond its line:\n%s", cal, timer)
			}
		} else if validateCalendar(cal) == nil {
			t.Fatalf("calendar %q refused: %v", cal, err)
		}
		ci, err := launchdCalendar(cal, 59*time.Minute)
		if err != nil {
			return
		}
		for _, v := range []struct {
			p      *int
			lo, hi int
		}{{ci.Minute, 0, 59}, {ci.Hour, 0, 23}, {ci.Day, 1, 31}, {ci.Weekday, 0, 7}} {
			if v.p != nil && (*v.p < v.lo || *v.p > v.hi) {
				t.Fatalf("calendar %q: launchd value %d outside %d..%d", cal, *v.p, v.lo, v.hi)
			}
		}
	})
}
