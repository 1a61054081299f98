package task

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/a7garden/oxios/runtime/contract"
)

// Status is `oxios status --json`; the field names are a stable schema.
type Status struct {
	// State: "running", "stopped", "stale" (the task exited and was not
	// removed), "created", "paused", "orphaned" (no task, port in use).
	State     string     `json:"state"`
	PID       uint32     `json:"pid,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	ExitCode  *uint32    `json:"exit_code,omitempty"`
	Ready     bool       `json:"ready"`
	Restarts  int        `json:"restarts"`
	// ChildState is oxios-init's view of the daemon: "starting",
	// "running", "backoff" (waiting to restart), "stopping", "exited".
	ChildState string `json:"child_state,omitempty"`
	// BackoffSeconds is the current restart delay while in "backoff".
	BackoffSeconds float64 `json:"backoff_seconds,omitempty"`
	ImageDigest    string  `json:"image_digest,omitempty"`
	Image          string  `json:"image"`
	Port           int     `json:"port"`
	URL            string  `json:"url"`
	ID             string  `json:"id"`
	Namespace      string  `json:"namespace"`
	Log            string  `json:"log"`
	// LogError is the log driver's current write error ("" = none), e.g.
	// a full disk: lines are being dropped, the daemon keeps running.
	LogError string `json:"log_error,omitempty"`
}

// Running is the LSB meaning: exit 0 from `status`.
func (s *Status) Running() bool { return s.State == "running" }

// String is the old layer's wording, so users and scripts keep reading it.
func (s *Status) String() string {
	switch s.State {
	case "running":
		var extra []string
		if !s.Ready {
			extra = append(extra, "not ready")
		}
		if s.ChildState == "backoff" {
			extra = append(extra, fmt.Sprintf("restarting in %v", time.Duration(s.BackoffSeconds*float64(time.Second)).Round(time.Millisecond)))
		}
		if s.Restarts > 0 {
			extra = append(extra, fmt.Sprintf("%d restarts", s.Restarts))
		}
		if len(extra) == 0 {
			return fmt.Sprintf("running (PID %d)", s.PID)
		}
		return fmt.Sprintf("running (PID %d, %s)", s.PID, strings.Join(extra, ", "))
	case "stale":
		code := uint32(0)
		if s.ExitCode != nil {
			code = *s.ExitCode
		}
		return fmt.Sprintf("stale (PID %d dead, exit code %d)", s.PID, code)
	case "orphaned":
		return fmt.Sprintf("orphaned (no task, port %d in use)", s.Port)
	}
	return s.State
}

// Details are extra lines for the human output (stdout, after String).
func (s *Status) Details() []string {
	if s.LogError == "" {
		return nil
	}
	return []string{"log " + s.Log + ": " + s.LogError}
}

// logErrorPath is where the log driver reports a write error.
func (r *Runtime) logErrorPath() string { return filepath.Join(r.runDir(), "log-error") }

// Status reads containerd (the source of truth) and oxios-init's health
// endpoint. A containerd outage is an error, never "stopped".
func (r *Runtime) Status(ctx context.Context) (*Status, error) {
	ctx = r.ctx(ctx)
	k := r.cfg.Container
	s := &Status{State: "stopped", Port: k.Port, URL: r.cfg.URL(), ID: k.ID,
		Namespace: r.cfg.Containerd.Namespace, Log: r.cfg.LogPath(), Image: r.cfg.Image.Ref}
	ctr, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if ctr == nil {
		r.markOrphaned(s)
		return s, nil
	}
	r.containerInfo(ctx, ctr, s)
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		r.markOrphaned(s)
		return s, nil
	}
	if err != nil {
		return nil, r.wrapUnavailable(err)
	}
	return s, r.taskInfo(ctx, task, s)
}

func (r *Runtime) markOrphaned(s *Status) {
	if portListening(s.Port) {
		s.State = "orphaned"
	}
}

func portListening(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (r *Runtime) containerInfo(ctx context.Context, ctr client.Container, s *Status) {
	info, err := ctr.Info(ctx)
	if err != nil {
		return
	}
	if t, err := time.Parse(time.RFC3339Nano, info.Labels[LabelStartedAt]); err == nil {
		s.StartedAt = &t
	}
	if img, err := r.client.GetImage(ctx, info.Image); err == nil {
		s.ImageDigest = img.Target().Digest.String()
		s.Image = info.Image
	}
}

func (r *Runtime) taskInfo(ctx context.Context, task client.Task, s *Status) error {
	st, err := task.Status(ctx)
	if err != nil {
		return r.wrapUnavailable(err)
	}
	s.PID = task.Pid()
	switch st.Status {
	case client.Running:
		s.State = "running"
		r.supervisorInfo(s)
		if b, err := os.ReadFile(r.logErrorPath()); err == nil {
			s.LogError = strings.TrimSpace(string(b))
		}
	case client.Stopped:
		s.State = "stale"
		code := st.ExitStatus
		s.ExitCode = &code
	default:
		s.State = string(st.Status)
	}
	return nil
}

// supervisorInfo asks oxios-init (GET /status on its unix socket) for
// readiness and restarts; without it, ready means the port answers.
func (r *Runtime) supervisorInfo(s *Status) {
	var rep contract.Report
	if err := r.supervisorGet(contract.PathStatus, &rep); err != nil {
		s.Ready = portListening(s.Port)
		return
	}
	s.Ready, s.Restarts = rep.Ready && portListening(s.Port), rep.Child.Restarts
	s.ChildState, s.BackoffSeconds = rep.Child.State, rep.Child.Backoff
}

// supervisorGet GETs path from oxios-init's health endpoint; a non-200
// answer is an error. v (may be nil) receives the JSON body.
func (r *Runtime) supervisorGet(path string, v any) error {
	sock := r.healthSocket()
	hc := &http.Client{
		Timeout: time.Second,
		// No keep-alive: the transport is dropped after this one request,
		// and an idle connection in it would stay open (with its two
		// goroutines) for good, one per watchdog tick of a foreground run.
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	resp, err := hc.Get("http://oxios-init" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("oxios-init %s: %s", path, resp.Status)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
