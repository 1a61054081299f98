//go:build linux

package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// The upgrade commands through the real CLI: an upgrade from an archive,
// status showing the previous digest, a crashing image rolled back with
// exit 1 and its log tail, history, and a rollback by hand.
func TestCLIUpgradeRollbackHistory(t *testing.T) {
	c := newCLI(t, "[upgrade]\nverify_for = \"1s\"\nstate_dir = \"state\"\n")
	if out, errs, code := c.run("start"); code != 0 {
		t.Fatalf("start: %d\n%s\n%s", code, out, errs)
	}
	defer c.run("stop")
	oldDigest := statusField(t, c, "image_digest")
	archive := testenv.ImageArchive(t)
	good := testenv.ImageVariant(t, archive, c.dir, "localhost/good:test", func(m map[string]any) { m["Labels"] = map[string]any{"v": "2"} })
	out, errs, code := c.run("upgrade", "--archive", good)
	if code != 0 || !strings.Contains(out, "oxios upgraded: "+oldDigest+" -> sha256:") {
		t.Fatalf("upgrade: %d\n%s\n%s", code, out, errs)
	}
	if prev := statusField(t, c, "previous_image_digest"); prev != oldDigest {
		t.Fatalf("previous_image_digest %q, want %q", prev, oldDigest)
	}
	if out, _, _ := c.run("status"); !strings.Contains(out, "previous: "+oldDigest) {
		t.Fatalf("status does not show the previous digest:\n%s", out)
	}
	newDigest := statusField(t, c, "image_digest")

	crash := testenv.ImageVariant(t, archive, c.dir, "localhost/crash:test", func(m map[string]any) {
		m["Env"] = append(m["Env"].([]any), "OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3")
	})
	out, errs, code = c.run("upgrade", "--archive", crash)
	if code != 1 || !strings.Contains(out, "rolled back to "+newDigest) || !strings.Contains(errs, "exited with code 3") || !strings.Contains(errs, "last log lines") {
		t.Fatalf("bad upgrade: %d\n%s\n%s", code, out, errs)
	}
	t.Logf("the report of a rolled-back upgrade:\n%s%s", out, errs)
	if d := statusField(t, c, "image_digest"); d != newDigest || httpStatus(c.url()+"/health") != 200 {
		t.Fatalf("after the rollback: digest %s, want %s", d, newDigest)
	}

	out, errs, code = c.run("rollback")
	if code != 0 || statusField(t, c, "image_digest") != oldDigest {
		t.Fatalf("rollback: %d\n%s\n%s", code, out, errs)
	}
	out, _, code = c.run("history")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[0], "rollback") || !strings.Contains(lines[1], "rolled-back") || !strings.Contains(lines[2], "upgraded") {
		t.Fatalf("history: %d\n%s", code, out)
	}
	if _, err := filepath.Glob(filepath.Join(c.dir, "state", c.id+".json")); err != nil {
		t.Fatal(err)
	}
	out, errs, code = c.run("upgrade", "a", "b")
	if code != 2 || !strings.Contains(errs, "one REF") {
		t.Fatalf("two refs: %d %s %s", code, out, errs)
	}
}

// statusField is one field of `oxios status --json`.
func statusField(t *testing.T, c *cli, name string) string {
	t.Helper()
	out, _, _ := c.run("status", "--json", "--no-logs")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	s, _ := m[name].(string)
	return s
}
