package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/a7garden/oxios/internal/safefs"
	"github.com/a7garden/oxios/runtime/contract"
)

// Description is `oxios status` at a glance: the Status (its first line
// and the stable JSON fields) plus what an operator reads below it, as
// in `systemctl status`. The JSON schema is in docs/status-json.md.
type Description struct {
	*Status
	// ReadySince is when oxios-init last turned ready (its ready file).
	ReadySince *time.Time `json:"ready_since,omitempty"`
	// UptimeSeconds is how long the task has been running.
	UptimeSeconds float64 `json:"uptime_seconds,omitempty"`
	// CreatedAt is when containerd created the container.
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// Probes are oxios-init's last results by kind (startup, readiness,
	// liveness); absent when oxios-init does not answer.
	Probes map[string]ProbeResult `json:"probes,omitempty"`
	// LogTail is the last lines of the log, oldest first.
	LogTail []string `json:"log_tail,omitempty"`
	// PreviousImageDigest is the digest `oxios rollback` goes back to
	// (the image before the last upgrade); UpgradeStep is the step of an
	// upgrade in progress or interrupted. runtime/upgrade's record; the
	// caller fills them.
	PreviousImageDigest string `json:"previous_image_digest,omitempty"`
	UpgradeStep         string `json:"upgrade_step,omitempty"`
}

// ProbeResult is oxios-init's last result of one probe.
type ProbeResult struct {
	Spec   string `json:"spec"`
	Result string `json:"result"` // success, failure, unknown; "" before the first run
	Detail string `json:"detail,omitempty"`
	// Time is when the last probe ran.
	Time      *time.Time `json:"time,omitempty"`
	Successes int        `json:"consecutive_successes"`
	Failures  int        `json:"consecutive_failures"`
}

// DescribeOptions select the extra reads of Describe.
type DescribeOptions struct {
	LogLines int // the last N log lines; 0 = none
}

// Describe is Status plus probe results, timestamps, the image digest and
// the log tail. Only Status needs containerd to answer; the rest is best
// effort and missing when it cannot be read.
func (r *Runtime) Describe(ctx context.Context, o DescribeOptions) (*Description, error) {
	s, err := r.Status(ctx)
	if err != nil {
		return nil, err
	}
	d := &Description{Status: s}
	r.describeContainer(r.ctx(ctx), d)
	if s.Running() {
		r.describeSupervisor(d)
	}
	if o.LogLines > 0 {
		d.LogTail, _ = TailLines(r.cfg.LogPath(), o.LogLines)
	}
	return d, nil
}

// describeContainer adds containerd's timestamps, and the configured
// image's digest when no container names one (stopped).
func (r *Runtime) describeContainer(ctx context.Context, d *Description) {
	if d.Running() && d.StartedAt != nil {
		d.UptimeSeconds = time.Since(*d.StartedAt).Seconds()
	}
	if !d.createdAt.IsZero() {
		d.CreatedAt = &d.createdAt
	}
	if d.ImageDigest == "" {
		if img, err := r.client.GetImage(ctx, r.cfg.Image.Ref); err == nil {
			d.ImageDigest = img.Target().Digest.String()
		}
	}
}

// describeSupervisor adds oxios-init's probe results (from the /status
// that Status read); the ready
// file's time is when it turned ready (oxios-init creates it on each
// transition to ready and removes it on the way back). The file is in
// ctr/, which the container writes: opened through the directory's fd, no
// link followed, and only its time shown.
func (r *Runtime) describeSupervisor(d *Description) {
	if d.Ready {
		d.ReadySince = r.readyFileTime()
	}
	if d.report == nil {
		return
	}
	d.Probes = map[string]ProbeResult{}
	for kind, p := range d.report.Probes {
		pr := ProbeResult{Spec: p.Spec, Result: p.Result, Detail: p.Detail, Successes: p.Successes, Failures: p.Failures}
		if !p.Time.IsZero() {
			t := p.Time
			pr.Time = &t
		}
		d.Probes[kind] = pr
	}
}

func (r *Runtime) readyFileTime() *time.Time {
	dir, err := safefs.OpenDir(r.ctrDir())
	if err != nil {
		return nil
	}
	defer dir.Close()
	f, err := dir.OpenFile(filepath.Base(contract.ReadyFile), os.O_RDONLY, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	t := st.ModTime()
	return &t
}

// ProbeKinds are the probe names of a Description in the order oxios-init
// runs them.
func (d *Description) ProbeKinds() []string {
	order := map[string]int{"startup": 0, "readiness": 1, "liveness": 2}
	var kinds []string
	for k, p := range d.Probes {
		if p.Spec != "" {
			kinds = append(kinds, k)
		}
	}
	sort.Slice(kinds, func(i, j int) bool { return order[kinds[i]] < order[kinds[j]] })
	return kinds
}

// Waiting says what a start in progress waits for, for a person watching
// it: the probe that has not passed yet and its last result, or the task
// when oxios-init does not answer yet.
func (r *Runtime) Waiting() string {
	var rep contract.Report
	if r.supervisorGet(0, false, contract.PathStatus, &rep) != nil {
		return "waiting for the task (image, container, oxios-init)"
	}
	for _, kind := range []string{"startup", "readiness"} {
		p, ok := rep.Probes[kind]
		if !ok || p.Spec == "" || (p.Result == "success" && p.Successes > 0) {
			continue
		}
		last := "not run yet"
		if p.Result != "" {
			last = p.Result
			if p.Detail != "" {
				last += ": " + p.Detail
			}
		}
		return fmt.Sprintf("waiting for %s: %s → %s", kind, p.Spec, last)
	}
	return fmt.Sprintf("waiting for a connection to port %d", r.cfg.Container.Port)
}
