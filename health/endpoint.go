package health

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handler serves the health endpoint:
//
//	/livez /readyz /startupz  200 or 503, for Kubernetes and Docker probes
//	/status                   JSON: child, restarts, backoff, last results
//	/metrics                  Prometheus text format (written by hand: the
//	                          client library would double oxios-init's RSS)
func (m *Monitor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, r *http.Request) {
		s := m.state()
		answer(w, s.live, "live")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		answer(w, m.state().ready, "ready")
	})
	mux.HandleFunc("/startupz", func(w http.ResponseWriter, r *http.Request) {
		answer(w, m.state().started, "started")
	})
	mux.HandleFunc("/status", m.serveStatus)
	mux.HandleFunc("/metrics", m.serveMetrics)
	return mux
}

func answer(w http.ResponseWriter, ok bool, what string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if ok {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, what+"\n")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "not "+what+"\n")
}

// Report is the JSON document served at /status.
type Report struct {
	Child   ChildReport            `json:"child"`
	Ready   bool                   `json:"ready"`
	Live    bool                   `json:"live"`
	Started bool                   `json:"started"`
	Probes  map[string]ProbeReport `json:"probes"`
}

// ChildReport is the supervisor's view of the daemon.
type ChildReport struct {
	PID      int     `json:"pid"`
	State    string  `json:"state"`
	Restarts int     `json:"restarts"`
	Backoff  float64 `json:"backoff_seconds"`
}

// ProbeReport is the last result of one probe.
type ProbeReport struct {
	Spec      string    `json:"spec"`
	Result    string    `json:"result"` // success, failure, unknown; "" before the first run
	Detail    string    `json:"detail,omitempty"`
	Time      time.Time `json:"time,omitzero"`
	Duration  float64   `json:"duration_seconds"`
	Successes int       `json:"consecutive_successes"`
	Failures  int       `json:"consecutive_failures"`
	Skipped   uint64    `json:"skipped_ticks"`
}

func (m *Monitor) childState() ChildState {
	if m.hooks.Child != nil {
		return m.hooks.Child()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := ChildState{PID: m.pid, State: "exited"}
	if m.childUp {
		cs.State = "running"
	}
	return cs
}

// StatusNow returns what /status serves.
func (m *Monitor) StatusNow() Report {
	cs := m.childState()
	s := m.state()
	st := Report{
		Child:   ChildReport{PID: cs.PID, State: cs.State, Restarts: cs.Restarts, Backoff: cs.Backoff.Seconds()},
		Ready:   s.ready,
		Live:    s.live,
		Started: s.started,
		Probes:  map[string]ProbeReport{},
	}
	for k, r := range m.runners {
		if r == nil {
			continue
		}
		sn := r.snapshot()
		ps := ProbeReport{Spec: r.cfg.Spec, Time: sn.At, Duration: sn.Dur.Seconds(),
			Successes: sn.Successes, Failures: sn.Failures, Skipped: sn.Skipped}
		if !sn.At.IsZero() {
			ps.Result, ps.Detail = sn.Last.Status.String(), sn.Last.Detail
		}
		st.Probes[probeKind(k).String()] = ps
	}
	return st
}

func (m *Monitor) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(m.StatusNow())
}

func (m *Monitor) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b bytes.Buffer
	m.writeMetrics(&b)
	w.Write(b.Bytes())
}

func b01(v bool) int {
	if v {
		return 1
	}
	return 0
}

// writeMetrics writes the Prometheus text exposition format 0.0.4.
func (m *Monitor) writeMetrics(b *bytes.Buffer) {
	cs := m.childState()
	s := m.state()
	gauge := func(name, help string, v any) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
	}
	gauge("oxios_init_child_up", "1 when the supervised daemon is running.", b01(s.childUp))
	gauge("oxios_init_child_pid", "PID of the supervised daemon, 0 when none.", cs.PID)
	fmt.Fprintf(b, "# HELP oxios_init_restarts_total Restarts of the daemon by the supervisor.\n# TYPE oxios_init_restarts_total counter\noxios_init_restarts_total %d\n", cs.Restarts)
	gauge("oxios_init_backoff_seconds", "Current restart backoff delay.", strconv.FormatFloat(cs.Backoff.Seconds(), 'g', -1, 64))
	gauge("oxios_init_ready", "1 when the daemon is ready.", b01(s.ready))
	gauge("oxios_init_live", "1 unless a liveness or startup failure is restarting the daemon.", b01(s.live))
	gauge("oxios_init_started", "1 once the startup probe succeeded (or none is set).", b01(s.started))

	b.WriteString("# HELP oxios_init_probe_success 1 when the last result of the probe was a success.\n# TYPE oxios_init_probe_success gauge\n")
	for k, r := range m.runners {
		if r != nil {
			sn := r.snapshot()
			fmt.Fprintf(b, "oxios_init_probe_success{probe=%q} %d\n", probeKind(k).String(), b01(sn.Last.Status == Success && !sn.At.IsZero()))
		}
	}
	b.WriteString("# HELP oxios_init_probe_results_total Probe results by outcome.\n# TYPE oxios_init_probe_results_total counter\n")
	for k, r := range m.runners {
		if r != nil {
			sn := r.snapshot()
			for st := Unknown; st <= Failure; st++ {
				fmt.Fprintf(b, "oxios_init_probe_results_total{probe=%q,result=%q} %d\n", probeKind(k).String(), st.String(), sn.Counts[st])
			}
		}
	}
	b.WriteString("# HELP oxios_init_probe_skipped_ticks_total Probe periods skipped because a probe overran.\n# TYPE oxios_init_probe_skipped_ticks_total counter\n")
	for k, r := range m.runners {
		if r != nil {
			fmt.Fprintf(b, "oxios_init_probe_skipped_ticks_total{probe=%q} %d\n", probeKind(k).String(), r.skipped.Load())
		}
	}
	b.WriteString("# HELP oxios_init_probe_duration_seconds Duration of the last probe.\n# TYPE oxios_init_probe_duration_seconds gauge\n")
	for k, r := range m.runners {
		if r != nil {
			sn := r.snapshot()
			fmt.Fprintf(b, "oxios_init_probe_duration_seconds{probe=%q} %s\n", probeKind(k).String(), strconv.FormatFloat(sn.Dur.Seconds(), 'g', -1, 64))
		}
	}
}

// kindPaths maps `oxios-init probe KIND` to the endpoint path.
var kindPaths = map[string]string{
	"readiness": "/readyz", "ready": "/readyz",
	"liveness": "/livez", "live": "/livez",
	"startup": "/startupz", "started": "/startupz",
}

// ErrNotOK is wrapped by Query when the supervisor answered other than 200.
var ErrNotOK = fmt.Errorf("probe not ok")

func query(addr, kind string, timeout time.Duration) error {
	path, ok := kindPaths[kind]
	if !ok {
		return fmt.Errorf("probe kind %q: want readiness, liveness or startup", kind)
	}
	if addr == "" {
		return fmt.Errorf("no health endpoint: set --health-listen or OXIOS_INIT_HEALTH_LISTEN")
	}
	if err := checkListenAddr(addr); err != nil {
		return fmt.Errorf("health endpoint %q: %w", addr, err)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	network, dialAddr, host := "tcp", addr, addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, dialAddr, host = "unix", p, "localhost"
	}
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, dialAddr)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: timeout}
	resp, err := c.Get("http://" + host + path)
	if err != nil {
		return fmt.Errorf("health endpoint %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: %s %s", ErrNotOK, kind, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
