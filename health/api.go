// Package health runs Kubernetes-style startup, readiness and liveness
// probes (tcp, http, exec, listen, notify) for the daemon supervised by
// oxios-init, and publishes the result (health endpoint, ready file,
// sd_notify).
//
// This file holds the configuration cmd/oxios-init fills; the Monitor's
// life cycle (NewMonitor, Start, ChildStarted, ChildExited, Close) is in
// monitor.go, Query in endpoint.go. The work is in spec.go (probe specs), tcp.go, http.go, exec.go,
// listen_linux.go (sock_diag, /proc/net/tcp, ownership), gate_linux.go
// (tcp and http wait for LISTEN), notify.go and notify_linux.go (the
// daemon's NOTIFY_SOCKET), runner.go (the kubelet's rules) and monitor.go
// (exposure).
package health

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ProbeConfig is one probe with the kubelet's fields.
type ProbeConfig struct {
	Spec             string // "tcp://h:p", "http://h:p/path", "https://...", "exec:cmd args", "listen://:p"; "" = off
	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
}

// Config is every health option of oxios-init.
type Config struct {
	Startup, Readiness, Liveness ProbeConfig
	HealthListen                 string // "HOST:PORT" or "unix:/path"; "" = off
	ReadyFile                    string // "" = off
	// NotifyToken, when set, makes the monitor report its readiness to
	// NOTIFY_SOCKET with this token, on every change and periodically
	// (the host's protocol; oxios-init takes it from its environment).
	NotifyToken string
	// NotifySocket is the daemon's NOTIFY_SOCKET for notify:// probes,
	// set by PrepareNotify.
	NotifySocket string
}

// The kubelet's defaults (k8s.io/api core/v1 Probe).
const (
	DefaultPeriod           = 10 * time.Second
	DefaultTimeout          = time.Second
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// DefaultConfig returns the kubelet defaults with every probe off.
func DefaultConfig() Config {
	p := ProbeConfig{
		Period:           DefaultPeriod,
		Timeout:          DefaultTimeout,
		SuccessThreshold: DefaultSuccessThreshold,
		FailureThreshold: DefaultFailureThreshold,
	}
	return Config{Startup: p, Readiness: p, Liveness: p}
}

func (c *Config) probe(kind string) *ProbeConfig {
	switch kind {
	case "startup":
		return &c.Startup
	case "readiness":
		return &c.Readiness
	case "liveness":
		return &c.Liveness
	}
	return nil
}

// Set applies one option by its long flag name without the leading dashes,
// e.g. "readiness", "readiness-period", "liveness-failure-threshold",
// "health-listen", "ready-file". known is false when name is not a health
// option. The environment variable OXIOS_INIT_READINESS_PERIOD maps to the
// name "readiness-period" (lower case, '_' -> '-').
//
// Durations are Go durations ("500ms", "10s") or, as in a Kubernetes
// manifest, whole seconds ("10").
func (c *Config) Set(name, value string) (known bool, err error) {
	switch name {
	case "health-listen":
		if value != "" {
			if err := checkListenAddr(value); err != nil {
				return true, fmt.Errorf("--health-listen %q: %w", value, err)
			}
		}
		c.HealthListen = value
		return true, nil
	case "ready-file":
		c.ReadyFile = value
		return true, nil
	}
	kind, field, _ := strings.Cut(name, "-")
	p := c.probe(kind)
	if p == nil {
		return false, nil
	}
	if p.Period == 0 && p.Timeout == 0 && p.SuccessThreshold == 0 && p.FailureThreshold == 0 {
		// A zero Config (not from DefaultConfig): start from the defaults.
		d := DefaultConfig().Startup
		d.Spec, d.InitialDelay = p.Spec, p.InitialDelay
		*p = d
	}
	switch field {
	case "":
		if value != "" {
			if err := checkSpec(name, value); err != nil {
				return true, fmt.Errorf("--%s: %w", name, err)
			}
		}
		p.Spec = value
	case "initial-delay":
		return true, setDuration(name, value, &p.InitialDelay, true)
	case "period":
		return true, setDuration(name, value, &p.Period, false)
	case "timeout":
		return true, setDuration(name, value, &p.Timeout, false)
	case "success-threshold":
		return true, setCount(name, value, &p.SuccessThreshold)
	case "failure-threshold":
		return true, setCount(name, value, &p.FailureThreshold)
	default:
		return false, nil
	}
	return true, nil
}

// checkSpec parses the spec of probe kind: notify:// says when start-up
// is over, which is no liveness check.
func checkSpec(kind, value string) error {
	s, err := ParseSpec(value)
	if err != nil {
		return err
	}
	if s.Kind == KindNotify && kind == "liveness" {
		return fmt.Errorf("%w %q: notify:// is a readiness or startup probe", ErrSpec, value)
	}
	return nil
}

func setDuration(name, value string, dst *time.Duration, zeroOK bool) error {
	d, err := time.ParseDuration(value)
	if err != nil {
		n, err2 := strconv.ParseUint(value, 10, 32)
		if err2 != nil {
			return fmt.Errorf("--%s %q: want a duration like 10s or 500ms, or whole seconds", name, value)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || (d == 0 && !zeroOK) {
		return fmt.Errorf("--%s %q: must be positive", name, value)
	}
	*dst = d
	return nil
}

func setCount(name, value string, dst *int) error {
	n, err := strconv.Atoi(value)
	if err != nil || n < 1 || n > 1<<20 {
		return fmt.Errorf("--%s %q: want a whole number >= 1", name, value)
	}
	*dst = n
	return nil
}

// Validate checks the whole configuration, naming the offending flag.
func (c Config) Validate() error {
	var errs []error
	for k := probeKind(0); k < numKinds; k++ {
		p := c.probe(k.String())
		if p.Spec == "" {
			continue
		}
		if err := checkSpec(k.String(), p.Spec); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", k, err))
		}
		if p.Period <= 0 {
			errs = append(errs, fmt.Errorf("--%s-period %v: must be positive", k, p.Period))
		}
		if p.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("--%s-timeout %v: must be positive", k, p.Timeout))
		}
		if p.InitialDelay < 0 {
			errs = append(errs, fmt.Errorf("--%s-initial-delay %v: must not be negative", k, p.InitialDelay))
		}
		if p.FailureThreshold < 1 {
			errs = append(errs, fmt.Errorf("--%s-failure-threshold %d: must be >= 1", k, p.FailureThreshold))
		}
		if p.SuccessThreshold < 1 {
			errs = append(errs, fmt.Errorf("--%s-success-threshold %d: must be >= 1", k, p.SuccessThreshold))
		} else if k != kindReadiness && p.SuccessThreshold != 1 {
			// The kubelet's API validation: liveness and startup act on one success.
			errs = append(errs, fmt.Errorf("--%s-success-threshold %d: must be 1 for %s probes", k, p.SuccessThreshold, k))
		}
	}
	if c.HealthListen != "" {
		if err := checkListenAddr(c.HealthListen); err != nil {
			errs = append(errs, fmt.Errorf("--health-listen %q: %w", c.HealthListen, err))
		}
	}
	return errors.Join(errs...)
}

// ChildState is what the supervisor reports about the main child.
type ChildState struct {
	PID      int    // 0 when not running
	State    string // "starting", "running", "backoff", "stopping", "exited"
	Restarts int
	Backoff  time.Duration // current backoff delay, 0 when none
}

// Hooks connect the monitor to the supervisor without an import cycle.
type Hooks struct {
	Restart func(reason string) // liveness or startup failure; must not block
	Child   func() ChildState   // for /status and /metrics
	Spawner Spawner             // starts exec: probes; nil makes them Unknown
}
