package gauntlet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// Rows 12.x: `oxios upgrade` with bad images, interrupted upgrades and
// registries that fail (issue 17).

// upgradeEnv is a scenario env with the [upgrade] section: a private
// state dir and verification window, appended to the config (the last
// table of the harness's file is [init.extra]); and the daemon started.
func upgradeEnv(t *testing.T, rw *row, s setup, verifyFor string) *env {
	e := newEnv(t, s)
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[upgrade]\nstate_dir = %q\nverify_for = %q\n", filepath.Join(e.dir, "state"), verifyFor)
	f.Close()
	e.mustStart(rw)
	return e
}

// variant is the test image with demo knobs added to its environment (and
// so another digest), as an archive `oxios upgrade --archive` imports.
func (e *env) variant(name string, knobs ...string) string {
	return testenv.ImageVariant(e.t, testenv.ImageArchive(e.t), e.dir, "localhost/"+name+":test", func(c map[string]any) {
		env, _ := c["Env"].([]any)
		for _, k := range knobs {
			env = append(env, k)
		}
		c["Env"] = env
		c["Labels"] = map[string]any{"gauntlet.variant": name}
	})
}

// upgradeRecord is the part of `oxios upgrade --json` a row reads.
type upgradeRecord struct {
	Outcome         string   `json:"outcome"`
	Failure         string   `json:"failure"`
	LogTail         []string `json:"log_tail"`
	DowntimeSeconds float64  `json:"downtime_seconds"`
	RollbackSeconds float64  `json:"rollback_seconds"`
	Note            string   `json:"note"`
}

func (e *env) upgrade(rw *row, args ...string) (upgradeRecord, result) {
	r := e.oxios(3*time.Minute, append([]string{"upgrade", "--json"}, args...)...)
	var rec upgradeRecord
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		rw.fail(e.t, "upgrade --json: %v\n%s", err, r)
	}
	return rec, r
}

// precious writes a file into the data dir; the check fails the row
// unless it is still there, unchanged.
func (e *env) precious(rw *row) func() {
	p := filepath.Join(e.dataDir, "precious.db")
	want := []byte("rows " + time.Now().String())
	if err := os.WriteFile(p, want, 0o644); err != nil {
		rw.fail(e.t, "%v", err)
	}
	return func() {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			rw.fail(e.t, "data file %s: %q, %v", p, got, err)
		}
	}
}

// digest is the running image's digest; the row fails unless exactly one
// daemon runs, ready.
func (e *env) oneDaemon(rw *row) string {
	e.t.Helper()
	s, r := e.status()
	if r.code != 0 || !s.Ready {
		rw.fail(e.t, "not running and ready: %s", r)
	}
	if n := daemonsOn(e.dataDir); n != 1 {
		rw.fail(e.t, "%d daemons on the data dir, want 1", n)
	}
	cl, ctx := e.client()
	tasks, err := cl.TaskService().List(ctx, nil)
	if err != nil || len(tasks.Tasks) != 1 {
		rw.fail(e.t, "tasks in the namespace: %v %v, want 1", tasks, err)
	}
	if step, _ := s.raw["upgrade_step"].(string); step != "" {
		rw.fail(e.t, "status still shows an upgrade at step %s", step)
	}
	d, _ := s.raw["image_digest"].(string)
	return d
}

// badUpgrade: an upgrade to archive fails (want in its failure) and is
// rolled back: exit 1, the old digest and PID-1 ready again, data intact.
func badUpgrade(t *testing.T, rw *row, e *env, archive, want string) upgradeRecord {
	intact := e.precious(rw)
	old := e.oneDaemon(rw)
	rec, r := e.upgrade(rw, "--archive", archive)
	if r.code != 1 || rec.Outcome != "rolled-back" || !strings.Contains(rec.Failure, want) {
		rw.fail(t, "want a rollback (%q): %s", want, r)
	}
	if now := e.oneDaemon(rw); now != old {
		rw.fail(t, "after the rollback the digest is %s, want %s", now, old)
	}
	intact()
	rw.recovered(time.Duration(rec.RollbackSeconds * float64(time.Second)))
	rw.lost("nothing")
	rw.note("down %.2f s in all; failure: %s", rec.DowntimeSeconds, rec.Failure)
	return rec
}

func TestUpgradeCrashAtStart(t *testing.T) {
	rw := scenario(t, "12.1", "upgrade: new image crashes at start")
	e := upgradeEnv(t, rw, setup{}, "2s")
	rec := badUpgrade(t, rw, e, e.variant("crash", "OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3"), "exited with code 3")
	if len(rec.LogTail) == 0 {
		rw.fail(t, "the report has no log tail of the new daemon")
	}
}

func TestUpgradeNeverReady(t *testing.T) {
	rw := scenario(t, "12.2", "upgrade: new image never ready")
	e := upgradeEnv(t, rw, setup{startTimeout: "3s"}, "2s")
	badUpgrade(t, rw, e, e.variant("unready", "OXIOS_DEMO_READY_DELAY=1h"), "container.start_timeout")
}

func TestUpgradeLivenessLostInWindow(t *testing.T) {
	rw := scenario(t, "12.3", "upgrade: ready, then liveness fails in the window")
	e := upgradeEnv(t, rw, setup{}, "10s")
	badUpgrade(t, rw, e, e.variant("hang", "OXIOS_DEMO_HANG_AFTER=1s"), "upgrade.verify_for")
}

// Five kill points of `oxios upgrade`, each followed by another command:
// the next command leaves exactly one daemon, on the image expected.
func TestUpgradeKilled(t *testing.T) {
	rw := scenario(t, "12.4", "upgrade SIGKILLed at 5 steps")
	e := upgradeEnv(t, rw, setup{}, "5s")
	intact := e.precious(rw)
	v2, v3 := e.variant("v2"), e.variant("v3")
	if _, r := e.upgrade(rw, "--archive", v2); r.code != 0 {
		rw.fail(t, "first upgrade: %s", r)
	}
	digestOf := map[string]string{}
	digestOf[v2] = e.oneDaemon(rw)
	type point struct {
		step string   // kill once the record is at this step or later
		next []string // the command that recovers
		want string   // the archive whose image must run after it
	}
	points := []point{
		{"fetch", []string{"start"}, v2},
		{"recorded", []string{"upgrade", "--archive", v3}, v3},
		{"stopping", []string{"start"}, v3},
		{"starting", []string{"rollback"}, v2},
		{"verifying", []string{"start"}, v2},
	}
	cur := v2
	var worst time.Duration
	for _, p := range points {
		target := v3
		if cur == v3 {
			target = v2
		}
		at := e.killUpgradeAt(rw, target, p.step)
		t0 := time.Now()
		if r := e.oxios(3*time.Minute, p.next...); r.code != 0 {
			rw.fail(t, "after a kill at %s: %s", at, r)
		}
		if p.next[0] == "start" { // upgrade and rollback go on after recovering
			worst = max(worst, time.Since(t0))
		}
		got := e.oneDaemon(rw)
		if digestOf[p.want] == "" {
			digestOf[p.want] = got
		}
		if got != digestOf[p.want] {
			rw.fail(t, "after a kill at %s and %q: digest %s, want %s's", at, p.next, got, filepath.Base(p.want))
		}
		rw.note("killed at %s, then %s", at, p.next[0])
		cur = p.want
	}
	intact()
	rw.recovered(worst)
	rw.lost("nothing")
}

// killUpgradeAt starts `oxios upgrade --archive target` and SIGKILLs it as
// soon as its record is at step or later; it returns the step the record
// had when the kill landed.
func (e *env) killUpgradeAt(rw *row, target, step string) string {
	u, at := e.upgradeAt(rw, target, step)
	u.cmd.Process.Signal(syscall.SIGKILL)
	u.cmd.Wait()
	if ws, _ := u.cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
		rw.fail(e.t, "the upgrade ended before the kill at %s:\n%s", step, u)
	}
	return at
}

// bgUpgrade is an `oxios upgrade --json` running in the background.
type bgUpgrade struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func (u *bgUpgrade) String() string { return u.stdout.String() + u.stderr.String() }

// wait waits for it to end and returns its exit code and report.
func (u *bgUpgrade) wait() (int, upgradeRecord) {
	u.cmd.Wait()
	var rec upgradeRecord
	json.Unmarshal(u.stdout.Bytes(), &rec)
	return u.cmd.ProcessState.ExitCode(), rec
}

// upgradeAt starts `oxios upgrade --json --archive target` and returns
// once its record is at step or later, with the step it had then.
func (e *env) upgradeAt(rw *row, target, step string) (*bgUpgrade, string) {
	order := map[string]int{"fetch": 0, "recorded": 1, "stopping": 2, "snapshot": 3, "starting": 4, "verifying": 5, "rolling-back": 6}
	u := &bgUpgrade{cmd: e.command(e.t.Context(), "upgrade", "--json", "--archive", target)}
	u.cmd.Stdout, u.cmd.Stderr = &u.stdout, &u.stderr
	if err := u.cmd.Start(); err != nil {
		rw.fail(e.t, "%v", err)
	}
	state := filepath.Join(e.dir, "state", e.id+".json")
	var at string
	// The record is the only sign of the step from outside; polled, so
	// the caller acts at the step or just after it.
	ok := eventually(2*time.Minute, time.Millisecond, func() bool {
		at = inProgressStep(state)
		o, seen := order[at]
		return seen && o >= order[step]
	})
	if !ok {
		u.cmd.Process.Kill()
		u.cmd.Wait()
		rw.fail(e.t, "the upgrade never reached %s:\n%s", step, u)
	}
	return u, at
}

func inProgressStep(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var st struct {
		InProgress *struct {
			Step string `json:"step"`
		} `json:"in_progress"`
	}
	if json.Unmarshal(b, &st) != nil || st.InProgress == nil {
		return ""
	}
	return st.InProgress.Step
}

// A registry that refuses, and one that accepts and never answers (the
// pull is interrupted by SIGTERM of the CLI): the old daemon is never
// stopped (same PID 1, same digest).
func TestUpgradeRegistryFails(t *testing.T) {
	rw := scenario(t, "12.5", "upgrade: registry unreachable / pull interrupted")
	e := upgradeEnv(t, rw, setup{}, "2s")
	before, _ := e.status()
	// A port free a moment ago: nothing listens there.
	rec, r := e.upgrade(rw, "127.0.0.1:"+strconv.Itoa(testenv.FreePort(t))+"/oxios/demo:v2")
	if r.code != 1 || rec.Outcome != "unchanged" {
		rw.fail(t, "unreachable registry: %s", r)
	}
	e.samePID(rw, before.PID)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rw.fail(t, "%v", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	cmd := e.command(t.Context(), "upgrade", ln.Addr().String()+"/oxios/demo:v2")
	if err := cmd.Start(); err != nil {
		rw.fail(t, "%v", err)
	}
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		rw.fail(t, "the upgrade never connected to the registry")
	}
	// SIGTERM mid-pull: the CLI ends the upgrade, nothing changed.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 1 {
		rw.fail(t, "upgrade after SIGTERM mid-pull: %v, want exit 1", err)
	}
	if s, r := e.status(); s.PID != before.PID || !s.Ready {
		rw.fail(t, "after the interrupted pull: %s", r)
	}
	if r := e.oxios(time.Minute, "start"); r.code != 0 || !strings.Contains(r.stdout, "already running") {
		rw.fail(t, "start after the interrupted pull: %s", r)
	}
	e.samePID(rw, before.PID)
	rw.lost("nothing")
	rw.note("refused: exit 1, unchanged; hung registry + SIGTERM mid-pull: exit 1, same PID, next start adopts it")
}

// samePID: one daemon runs, ready, with the task PID it had.
func (e *env) samePID(rw *row, pid uint32) {
	e.t.Helper()
	e.oneDaemon(rw)
	if s, _ := e.status(); s.PID != pid {
		rw.fail(e.t, "task PID %d, was %d: the old daemon was stopped", s.PID, pid)
	}
}

func TestUpgradeIfNewerEqual(t *testing.T) {
	rw := scenario(t, "12.6", "upgrade --if-newer, same digest")
	e := upgradeEnv(t, rw, setup{}, "2s")
	before, _ := e.status()
	rec, r := e.upgrade(rw, "--if-newer", "--archive", testenv.ImageArchive(t))
	if r.code != 0 || rec.Outcome != "unchanged" {
		rw.fail(t, "--if-newer with the running image: %s", r)
	}
	e.samePID(rw, before.PID)
	rw.lost("nothing")
	rw.note("exit 0, %s", rec.Note)
}

// daemonsOn counts the processes named oxios-demo that have dataDir
// mounted (other tests' daemons have other data dirs).
func daemonsOn(dataDir string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, ent := range ents {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "oxios-demo" {
			continue
		}
		mi, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "mountinfo"))
		if err == nil && strings.Contains(string(mi), filepath.Base(filepath.Dir(dataDir))+"/data ") {
			n++
		}
	}
	return n
}

// containerd SIGKILLed and restarted while an upgrade is in its window:
// the task runs on under its shim, and a cut exit event stream is not
// an exit. The upgrade passes its window with the same new daemon.
func TestUpgradeContainerdRestartInWindow(t *testing.T) {
	rw := scenario(t, "12.7", "upgrade: containerd restarted in the window")
	e := upgradeEnv(t, rw, setup{}, "6s")
	u, _ := e.upgradeAt(rw, e.variant("v2"), "verifying")
	inWindow, _ := e.status()
	t0 := time.Now()
	e.ctrd.Restart()
	outage := time.Since(t0)
	if code, rec := u.wait(); code != 0 || rec.Outcome != "upgraded" {
		rw.fail(t, "upgrade with containerd restarted in its window: exit %d\n%s", code, u)
	}
	e.samePID(rw, inWindow.PID)
	rw.lost("nothing")
	rw.note("containerd down %v in the window; upgraded, same task PID", outage.Round(time.Millisecond))
}

// Commands while an upgrade is in its window: a second upgrade is
// refused at once naming the holder; a start waits for the window and
// adopts the upgraded daemon; the upgrade passes.
func TestUpgradeCommandsInWindow(t *testing.T) {
	rw := scenario(t, "12.8", "upgrade: other commands in the window")
	e := upgradeEnv(t, rw, setup{}, "4s")
	v2, v3 := e.variant("v2"), e.variant("v3")
	u, _ := e.upgradeAt(rw, v2, "verifying")
	inWindow, _ := e.status()
	holder := "PID " + strconv.Itoa(u.cmd.Process.Pid)
	if r := e.oxios(time.Minute, "upgrade", "--archive", v3); r.code != 1 || !strings.Contains(r.stderr, holder) {
		rw.fail(t, "second upgrade in the window: want exit 1 naming %s: %s", holder, r)
	}
	r := e.oxios(time.Minute, "start")
	if r.code != 0 || !strings.Contains(r.stdout, "already running") {
		rw.fail(t, "start in the window: %s", r)
	}
	if code, rec := u.wait(); code != 0 || rec.Outcome != "upgraded" {
		rw.fail(t, "the upgrade: exit %d\n%s", code, u)
	}
	e.samePID(rw, inWindow.PID)
	rw.lost("nothing")
	rw.note("second upgrade refused at once; start waited %v, then adopted", r.took.Round(time.Millisecond))
}
