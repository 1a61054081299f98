package task

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/a7garden/oxios/internal/safefs"
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

	// What Status read on the way, kept for Describe so that `oxios
	// status` asks containerd and oxios-init once each.
	createdAt time.Time        // the container record's
	report    *contract.Report // oxios-init's /status; nil when it did not answer
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

// logErrorPath is where the log driver reports a write error (in the
// host-private run dir).
func (r *Runtime) logErrorPath() string { return filepath.Join(r.runDir(), logErrorSub) }

// Caps on what status reads; a report bigger than these is refused.
const (
	maxLogError     = 4 << 10
	maxSupervisor   = contract.MaxReport
	supervisorLimit = time.Second // connect, request and answer, together
)

// logError is the log driver's report, "" when there is none. Read with
// safefs all the same: no link, no FIFO, size-capped.
func (r *Runtime) logError() string {
	b, err := safefs.ReadFile(r.logErrorPath(), maxLogError)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

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
	s.createdAt = info.CreatedAt
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
		s.LogError = r.logError()
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
	if err := r.supervisorGet(s.PID, false, contract.PathStatus, &rep); err != nil {
		s.Ready = portListening(s.Port)
		return
	}
	s.report = &rep
	s.Ready, s.Restarts = rep.Ready && portListening(s.Port), rep.Child.Restarts
	s.ChildState, s.BackoffSeconds = rep.Child.State, rep.Child.Backoff
}

// supervisorGet GETs path from oxios-init's health endpoint; a non-200
// answer is an error. v (may be nil) receives the JSON body. The socket
// is in ctr/, which the container writes: it is reached through safefs,
// its listener must be the task's PID 1 (pid; when visible from here, or
// always when strict), and the exchange is bounded in time and size.
func (r *Runtime) supervisorGet(pid uint32, strict bool, path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), supervisorLimit)
	defer cancel()
	hc := &http.Client{
		Timeout: supervisorLimit,
		// No keep-alive: the transport is dropped after this one request,
		// and an idle connection in it would stay open (with its two
		// goroutines) for good, one per watchdog tick of a foreground run.
		Transport: &http.Transport{DisableKeepAlives: true, MaxResponseHeaderBytes: maxSupervisor,
			DialContext: func(context.Context, string, string) (net.Conn, error) { return r.dialSupervisor(pid, strict) }},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://oxios-init"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("oxios-init %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSupervisor+1))
	if err != nil {
		return fmt.Errorf("oxios-init %s: %w", path, err)
	}
	if len(b) > maxSupervisor {
		return fmt.Errorf("oxios-init %s: answer larger than %d bytes", path, maxSupervisor)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

// dialSupervisor connects to ctr/health.sock and checks who listens.
func (r *Runtime) dialSupervisor(pid uint32, strict bool) (net.Conn, error) {
	d, err := safefs.OpenDir(r.ctrDir())
	if err != nil {
		return nil, err
	}
	defer d.Close()
	f, err := d.DialUnix(filepath.Base(contract.HealthSocket))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	peer, err := safefs.PeerPID(int(f.Fd()))
	if err == nil && (strict || pid != 0 && peer != 0) && (peer == 0 || uint32(peer) != pid) {
		err = fmt.Errorf("%s: listener is PID %d, not the task's PID 1 (%d): refused", f.Name(), peer, pid)
	}
	if err != nil {
		return nil, err
	}
	return net.FileConn(f)
}
