package hostsvc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExecStopPost runs the rendered ExecStopPost= argv (as SplitExecLine
// reads it, i.e. as systemd would exec it) with each $SERVICE_RESULT systemd
// can set, against a stand-in oxios at a hostile path that records its
// arguments: the task is stopped unless the CLI died of a signal, the one
// case where Restart=on-failure brings a new CLI that adopts the task.
func TestExecStopPost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), `a "b" 'c' $HOME %n \ é`)
	bin := filepath.Join(dir, "oxios")
	rec := filepath.Join(t.TempDir(), "args")
	makeExecutable(t, bin)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > \""+rec+"\"\necho oxios is not running\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config $X.toml")
	unit, err := RenderUnit(Spec{Binary: bin, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	argv, err := UnitExecArgs(unit, "ExecStopPost")
	if err != nil {
		t.Fatal(err)
	}
	for result, wantStop := range map[string]bool{
		"success": true, "timeout": true, "exit-code": true, "watchdog": true, "resources": true,
		"start-limit-hit": true, "signal": false, "core-dump": false,
	} {
		os.Remove(rec)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SERVICE_RESULT=" + result}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", result, err, out)
		}
		// A clean stop leaves nothing in the journal; any other end of
		// the service keeps oxios' report of what it stopped.
		if quiet := len(out) == 0; wantStop && quiet != (result == "success") {
			t.Errorf("SERVICE_RESULT=%s: output %q; want it only after a failure", result, out)
		}
		got, err := os.ReadFile(rec)
		if !wantStop {
			if err == nil {
				t.Errorf("SERVICE_RESULT=%s: ran oxios %q; the task must be left for the restarted CLI to adopt", result, got)
			}
			continue
		}
		if want := []string{"stop", "--config", cfg}; err != nil || !slices.Equal(strings.Split(strings.TrimSuffix(string(got), "\n"), "\n"), want) {
			t.Errorf("SERVICE_RESULT=%s: oxios ran with %q (%v), want %q", result, got, err, want)
		}
	}
}
