//go:build linux

package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

// BenchmarkUpgrade measures the service's downtime, seen from a client
// that asks /health/ready without pause, through three operations on one
// daemon, interleaved round by round:
//
//	hand:    oxios stop, then oxios start (each timed: the drain, a plain start)
//	upgrade: oxios upgrade --archive to another image (the new one passes
//	         its verification window)
//	bad:     oxios upgrade --archive to an image that crashes at start,
//	         rolled back (the record's failure -> old daemon ready again)
//
// Downtime is the longest gap between two successful readiness answers
// while the operation ran: the old daemon's last one to the next one's
// first. Run with `make bench-runtime` (BENCH=Upgrade for this one alone;
// UPGRADE_ROUNDS=N, default 5).
func BenchmarkUpgrade(b *testing.B) {
	testenv.RequireRoot(b)
	u := newUpgradeBench(b)
	u.oxios("start")
	b.ResetTimer()
	images := []string{u.good, u.base}
	for i := 0; i < u.rounds; i++ {
		u.handRound()
		u.upgradeRound(images[i%2])
		u.badRound()
	}
	b.StopTimer()
	u.oxios("stop")
	u.report()
}

type upgradeBench struct {
	b               *testing.B
	bin, cfg, url   string
	base, good, bad string // image archives
	rounds          int
	samples         map[string][]time.Duration
}

func newUpgradeBench(b *testing.B) *upgradeBench {
	dir := b.TempDir()
	archive := testenv.ImageArchive(b)
	u := &upgradeBench{b: b, bin: testenv.Bin(b, "oxios"), base: archive, rounds: 5, samples: map[string][]time.Duration{}}
	if v, err := strconv.Atoi(os.Getenv("UPGRADE_ROUNDS")); err == nil && v > 0 {
		u.rounds = v
	}
	u.good = testenv.ImageVariant(b, archive, dir, "localhost/oxios:bench-good", func(c map[string]any) {
		c["Labels"] = map[string]any{"oxios.bench": "good"}
	})
	u.bad = testenv.ImageVariant(b, archive, dir, "localhost/oxios:bench-crash", func(c map[string]any) {
		env, _ := c["Env"].([]any)
		c["Env"] = append(env, "OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3")
	})
	port := testenv.FreePort(b)
	u.url = fmt.Sprintf("http://127.0.0.1:%d/health/ready", port)
	u.cfg = filepath.Join(dir, "oxios.toml")
	// verify_for is not downtime (the new daemon serves during it): 1 s
	// keeps the rounds short.
	text := fmt.Sprintf("[containerd]\naddress = %q\n[image]\narchive = %q\n[container]\nid = \"bench-upgrade\"\nport = %d\ndata_dir = %q\nlog_dir = %q\nrun_dir = %q\nenv = [\"OXIOS_DEMO_LISTEN=127.0.0.1:{port}\"]\n[upgrade]\nverify_for = \"1s\"\nstate_dir = %q\n",
		ctrtest.Start(b), archive, port, filepath.Join(dir, "data"), filepath.Join(dir, "logs"), filepath.Join(dir, "run"), filepath.Join(dir, "state"))
	if err := os.WriteFile(u.cfg, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	return u
}

// oxios runs the CLI and returns its stdout; a failure ends the bench
// unless it is the exit code allowed.
func (u *upgradeBench) oxios(args ...string) []byte {
	out, err := u.oxiosExit(0, args...)
	if err != nil {
		u.b.Fatal(err)
	}
	return out
}

func (u *upgradeBench) oxiosExit(allowed int, args ...string) ([]byte, error) {
	cmd := exec.Command(u.bin, append(args, "--config", u.cfg)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == allowed) {
		return nil, fmt.Errorf("oxios %v: %v\n%s%s", args, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

func (u *upgradeBench) add(name string, d time.Duration) {
	u.samples[name] = append(u.samples[name], d)
}

// handRound: what a user did before oxios upgrade existed.
func (u *upgradeBench) handRound() {
	p := u.probe()
	t0 := time.Now()
	u.oxios("stop")
	t1 := time.Now()
	u.oxios("start")
	t2 := time.Now()
	u.add("hand: oxios stop (drain)", t1.Sub(t0))
	u.add("hand: oxios start (plain start)", t2.Sub(t1))
	u.add("hand: downtime", p.gap(u.b))
}

func (u *upgradeBench) upgradeRound(archive string) {
	p := u.probe()
	rec := u.record(0, "upgrade", "--archive", archive, "--json")
	u.add("upgrade: downtime", p.gap(u.b))
	u.add("upgrade: downtime (its record)", seconds(rec.DowntimeSeconds))
}

func (u *upgradeBench) badRound() {
	p := u.probe()
	rec := u.record(1, "upgrade", "--archive", u.bad, "--json")
	if rec.Outcome != "rolled-back" {
		u.b.Fatalf("upgrade to a crashing image: outcome %q, want rolled-back", rec.Outcome)
	}
	u.add("bad: downtime", p.gap(u.b))
	u.add("bad: failure -> old ready (its record)", seconds(rec.RollbackSeconds))
}

// upgradeRecord is the part of `oxios upgrade --json` the bench reads.
type upgradeRecord struct {
	Outcome         string  `json:"outcome"`
	DowntimeSeconds float64 `json:"downtime_seconds"`
	RollbackSeconds float64 `json:"rollback_seconds"`
}

func (u *upgradeBench) record(exit int, args ...string) upgradeRecord {
	out, err := u.oxiosExit(exit, args...)
	if err != nil {
		u.b.Fatal(err)
	}
	var rec upgradeRecord
	if err := json.Unmarshal(out, &rec); err != nil {
		u.b.Fatalf("oxios %v --json: %v\n%s", args, err, out)
	}
	return rec
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// prober asks /health/ready back to back (a fresh connection each time,
// as a new client would) and keeps the times of the successes.
type prober struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	ok     []time.Time
}

func (u *upgradeBench) probe() *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{url: u.url, cancel: cancel, done: make(chan struct{})}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			if p.once(ctx, c) {
				p.mu.Lock()
				p.ok = append(p.ok, time.Now())
				p.mu.Unlock()
			}
			// Refused connections return at once: a short pause keeps the
			// prober from taking a core from the daemon it waits for.
			time.Sleep(500 * time.Microsecond)
		}
	}()
	p.waitOK(u.b, 1)
	return p
}

func (p *prober) once(ctx context.Context, c *http.Client) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitOK waits for more than n successes (the service is up).
func (p *prober) waitOK(b *testing.B, n int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		k := len(p.ok)
		p.mu.Unlock()
		if k > n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: no readiness within 30 s", p.url)
		}
		time.Sleep(time.Millisecond)
	}
}

// gap, once the operation returned: waits for the service to answer
// again, stops, and returns the longest time between two successes.
func (p *prober) gap(b *testing.B) time.Duration {
	p.mu.Lock()
	n := len(p.ok)
	p.mu.Unlock()
	p.waitOK(b, n)
	p.cancel()
	<-p.done
	var longest time.Duration
	for i := 1; i < len(p.ok); i++ {
		longest = max(longest, p.ok[i].Sub(p.ok[i-1]))
	}
	return longest
}

func (u *upgradeBench) report() {
	m := map[string]time.Duration{}
	for k, v := range u.samples {
		m[k] = median(v)
	}
	fmt.Printf("\noxios upgrade downtime: %d rounds, median (a client asking /health/ready back to back)\n\n", u.rounds)
	fmt.Printf("%-40s %10s   %s\n", "operation", "median", "")
	row := func(name, note string) { fmt.Printf("%-40s %8.1fms   %s\n", name, ms(m[name]), note) }
	drain, start := m["hand: oxios stop (drain)"], m["hand: oxios start (plain start)"]
	row("hand: oxios stop (drain)", "")
	row("hand: oxios start (plain start)", "")
	row("hand: downtime", "")
	good := drain + start*11/10
	row("upgrade: downtime", fmt.Sprintf("target <= drain + 1.1 x start = %.1fms: %s", ms(good), met(m["upgrade: downtime"] <= good)))
	row("upgrade: downtime (its record)", "")
	bad := start + time.Second
	row("bad: failure -> old ready (its record)", fmt.Sprintf("target <= start + 1 s = %.1fms: %s", ms(bad), met(m["bad: failure -> old ready (its record)"] <= bad)))
	row("bad: downtime", "(whole: the new daemon's start, its crash, the rollback)")
	u.b.ReportMetric(ms(m["upgrade: downtime"]), "upgrade-down-ms")
	u.b.ReportMetric(ms(m["bad: failure -> old ready (its record)"]), "rollback-ms")
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
