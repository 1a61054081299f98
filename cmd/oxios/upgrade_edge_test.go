//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// What an operator can get wrong at the CLI boundary: each is refused
// with exit 2 (usage) or 1, naming the REF, flag or path, and the
// running daemon is untouched (same task PID). rollback with nothing to
// go back to and history with nothing recorded say so.
func TestCLIUpgradeBadInput(t *testing.T) {
	c := newCLI(t, "[upgrade]\nstate_dir = \"state\"\n")
	if out, errs, code := c.run("history"); code != 0 || !strings.Contains(out, "no upgrades recorded") {
		t.Fatalf("history before any upgrade: %d\n%s\n%s", code, out, errs)
	}
	if out, _, code := c.run("history", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("history --json before any upgrade: %d %q", code, out)
	}
	if out, errs, code := c.run("start"); code != 0 {
		t.Fatalf("start: %d\n%s\n%s", code, out, errs)
	}
	defer c.run("stop")
	pid := statusPID(t, c)
	if _, errs, code := c.run("rollback"); code != 1 || !strings.Contains(errs, "no previous version recorded") {
		t.Fatalf("rollback with no previous version: %d\n%s", code, errs)
	}
	text := filepath.Join(c.dir, "notes.txt")
	os.WriteFile(text, []byte("not an archive\n"), 0o644)
	missing := filepath.Join(c.dir, "missing.tar")
	two := twoImages(t, c)
	for _, tc := range []struct {
		args []string
		code int
		want []string // in stderr
	}{
		{[]string{"Bad/REF::x"}, 2, []string{`"Bad/REF::x"`, "full image name"}},
		{[]string{"alpine:3"}, 2, []string{"docker.io/library/alpine:3"}},
		{[]string{"registry.example/a:1", "--archive", text}, 2, []string{"one REF or --archive"}},
		{[]string{"--archive", missing}, 1, []string{missing, "--archive"}},
		{[]string{"--archive", c.dir}, 1, []string{c.dir, "not a regular file"}},
		{[]string{"--archive", text}, 1, []string{text, "not an image archive"}},
		{[]string{"--archive", two}, 1, []string{two, "holds 2 images", "localhost/one:test", "localhost/two:test", "none named localhost/oxios:latest", "--archive an archive of the one image"}},
	} {
		out, errs, code := c.run(append([]string{"upgrade"}, tc.args...)...)
		t.Logf("upgrade %q: exit %d\n%s", tc.args, code, errs)
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("upgrade %q: stderr lacks %q:\n%s", tc.args, w, errs)
			}
		}
		if code != tc.code {
			t.Errorf("upgrade %q: exit %d, want %d\n%s\n%s", tc.args, code, tc.code, out, errs)
		}
		if now := statusPID(t, c); now != pid {
			t.Fatalf("upgrade %q: task PID %d, was %d: the daemon was touched", tc.args, now, pid)
		}
	}
	// Only the archive that had to be imported to be judged got as far as
	// a record (unchanged: nothing stopped).
	out, _, _ := c.run("history", "--json")
	var h []struct{ Outcome, Source string }
	if err := json.Unmarshal([]byte(out), &h); err != nil || len(h) != 1 || h[0].Outcome != "unchanged" || !strings.Contains(h[0].Source, two) {
		t.Fatalf("history: %v\n%s", err, out)
	}
	badRecord(t, c, pid)
}

// badRecord truncates the upgrade record: upgrade, rollback and history
// refuse with the file named and the next step; start still adopts the
// daemon and says why the record was not read; the file stays as it was.
func badRecord(t *testing.T, c *cli, pid int) {
	state := filepath.Join(c.dir, "state", c.id+".json")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	b = b[:len(b)/2]
	os.WriteFile(state, b, 0o600)
	for _, args := range [][]string{{"upgrade"}, {"rollback"}, {"history"}, {"start"}} {
		out, errs, code := c.run(args...)
		if !strings.Contains(errs, state) || !strings.Contains(errs, "move it aside") {
			t.Errorf("%s with a truncated record: stderr does not name %s and the next step:\n%s", args[0], state, errs)
		}
		if want := map[bool]int{true: 0, false: 1}[args[0] == "start"]; code != want {
			t.Errorf("%s with a truncated record: exit %d, want %d\n%s\n%s", args[0], code, want, out, errs)
		}
	}
	if now := statusPID(t, c); now != pid {
		t.Fatalf("task PID %d, was %d", now, pid)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(after, b) {
		t.Fatalf("the truncated record was changed:\n%s", after)
	}
}

func statusPID(t *testing.T, c *cli) int {
	t.Helper()
	out, errs, _ := c.run("status", "--json", "--no-logs")
	var s struct {
		PID   int  `json:"pid"`
		Ready bool `json:"ready"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.PID == 0 || !s.Ready {
		t.Fatalf("status: %v\n%s\n%s", err, out, errs)
	}
	return s.PID
}

// twoImages is an archive holding the test image under two names, neither
// of them image.ref.
func twoImages(t *testing.T, c *cli) string {
	one := testenv.ImageVariant(t, testenv.ImageArchive(t), c.dir, "localhost/one:test", func(map[string]any) {})
	in, err := os.Open(one)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out := filepath.Join(c.dir, "two.tar")
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == "index.json" {
			b = twoNames(t, b)
			h.Size = int64(len(b))
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// twoNames lists the index's one manifest twice, as localhost/one:test
// and localhost/two:test.
func twoNames(t *testing.T, index []byte) []byte {
	var ix map[string]any
	if err := json.Unmarshal(index, &ix); err != nil {
		t.Fatal(err)
	}
	m := ix["manifests"].([]any)[0].(map[string]any)
	second := map[string]any{}
	for k, v := range m {
		second[k] = v
	}
	second["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "localhost/two:test"}
	ix["manifests"] = []any{m, second}
	b, err := json.Marshal(ix)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// `oxios start` and `oxios stop` while an upgrade is in its verification
// window both wait for the window to end (the upgrade holds the start
// lock): the start then adopts the upgraded daemon, starting no second
// one and recovering nothing; the stop then stops the daemon the upgrade
// left, so that it does not read as the new daemon's failure and bring
// the old one back. Both upgrades end upgraded.
func TestCLIStartAndStopDuringWindow(t *testing.T) {
	c := newCLI(t, "[upgrade]\nverify_for = \"3s\"\nstate_dir = \"state\"\n")
	if out, errs, code := c.run("start"); code != 0 {
		t.Fatalf("start: %d\n%s\n%s", code, out, errs)
	}
	defer c.run("stop")
	archive := testenv.ImageArchive(t)
	variant := func(name string) string {
		return testenv.ImageVariant(t, archive, c.dir, "localhost/"+name+":test", func(m map[string]any) { m["Labels"] = map[string]any{"v": name} })
	}

	up := c.upgradeInWindow(variant("v2"))
	out, errs, code := c.run("start")
	if code != 0 || !strings.Contains(out, "already running") || !strings.Contains(errs, "waiting for it to end") {
		t.Fatalf("start in the window: %d\n%s\n%s", code, out, errs)
	}
	c.lastOutcome("upgraded") // the start returned once the upgrade had ended
	if err := up.Wait(); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if n := strings.Count(c.log(), "oxios-demo starting"); n != 2 {
		t.Fatalf("%d daemon starts in the log, want 2 (the first, the upgraded one)", n)
	}

	up = c.upgradeInWindow(variant("v3"))
	out, errs, code = c.run("stop")
	if code != 0 || !strings.Contains(out, "oxios stopped") || !strings.Contains(errs, "stopping once it ends") {
		t.Fatalf("stop in the window: %d\n%s\n%s", code, out, errs)
	}
	c.lastOutcome("upgraded")
	if err := up.Wait(); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if c.hasContainer() {
		t.Fatal("a container is left after the stop")
	}
}

// upgradeInWindow starts `oxios upgrade --archive archive` and returns
// once its record is at the verification step.
func (c *cli) upgradeInWindow(archive string) *exec.Cmd {
	c.t.Helper()
	cmd := exec.Command(c.bin, "upgrade", "--archive", archive, "--config", c.config)
	cmd.Env = append(os.Environ(), "CONTAINERD_ADDRESS=", "NOTIFY_SOCKET=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	state := filepath.Join(c.dir, "state", c.id+".json")
	// The record is the only sign of the step from outside: polled.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var st struct {
			InProgress *struct{ Step string } `json:"in_progress"`
		}
		if b, err := os.ReadFile(state); err == nil && json.Unmarshal(b, &st) == nil && st.InProgress != nil && st.InProgress.Step == "verifying" {
			return cmd
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	c.t.Fatalf("the upgrade never reached its window:\n%s", out.String())
	return nil
}

// lastOutcome: the newest history entry has outcome want.
func (c *cli) lastOutcome(want string) {
	c.t.Helper()
	out, _, _ := c.run("history", "--json", "-n", "1")
	var h []struct{ Outcome string }
	if err := json.Unmarshal([]byte(out), &h); err != nil || len(h) != 1 || h[0].Outcome != want {
		c.t.Fatalf("last history entry: %v %s; want %s", err, out, want)
	}
}

func (c *cli) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "logs", c.id+".log"))
	return string(b)
}

// Two `oxios upgrade` started together: one upgrades, the other is
// refused at once (exit 1) naming the PID that holds the upgrade, and the
// old daemon is stopped once only.
func TestCLITwoUpgradesAtOnce(t *testing.T) {
	c := newCLI(t, "[upgrade]\nverify_for = \"2s\"\nstate_dir = \"state\"\n")
	if out, errs, code := c.run("start"); code != 0 {
		t.Fatalf("start: %d\n%s\n%s", code, out, errs)
	}
	defer c.run("stop")
	archive := testenv.ImageArchive(t)
	var cmds [2]*exec.Cmd
	var outs [2]bytes.Buffer
	for i, name := range []string{"v2", "v3"} {
		a := testenv.ImageVariant(t, archive, c.dir, "localhost/"+name+":test", func(m map[string]any) { m["Labels"] = map[string]any{"v": name} })
		cmds[i] = exec.Command(c.bin, "upgrade", "--archive", a, "--config", c.config)
		cmds[i].Env = append(os.Environ(), "CONTAINERD_ADDRESS=", "NOTIFY_SOCKET=")
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	var codes [2]int
	for i, cmd := range cmds {
		cmd.Wait()
		codes[i] = cmd.ProcessState.ExitCode()
	}
	won, lost := 0, 1
	if codes[0] != 0 {
		won, lost = 1, 0
	}
	pid := strconv.Itoa(cmds[won].Process.Pid)
	if codes[won] != 0 || codes[lost] != 1 || !strings.Contains(outs[lost].String(), "in progress: PID "+pid) {
		t.Fatalf("exit codes %v; want one 0 and one 1 naming PID %s:\n%s\n---\n%s", codes, pid, outs[0].String(), outs[1].String())
	}
	if n := strings.Count(c.log(), "stop signal received"); n != 1 {
		t.Fatalf("the daemon was stopped %d times, want once", n)
	}
	c.lastOutcome("upgraded")
}

// A REF that does not parse, or an archive that is not there, is judged
// before containerd is asked anything: the same answer with no config
// and no containerd.
func TestUpgradeSourceBeforeContainerd(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.tar")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"upgrade", "Bad/REF::x"}, 2, `bad image reference "Bad/REF::x"`},
		{[]string{"upgrade", "--archive", missing}, 1, missing},
	} {
		_, errs, code := oxios(t, append(tc.args, "--config", filepath.Join(t.TempDir(), "none.toml"))...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}
