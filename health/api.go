// Package health runs Kubernetes-style startup, readiness and liveness
// probes (tcp, http, exec, listen) for the daemon supervised by oxios-init,
// and publishes the result (health endpoint, ready file, sd_notify).
//
// CONTRACT STUB written before the package existed: the signatures below are
// what cmd/oxios-init wires against. The health owner replaces the bodies and
// may move them to other files, but keeps these names and signatures.
package health

import (
	"time"

	"github.com/sirupsen/logrus"
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
}

// DefaultConfig returns the kubelet defaults with every probe off.
func DefaultConfig() Config { return Config{} }

// Set applies one option by its long flag name without the leading dashes,
// e.g. "readiness", "readiness-period", "liveness-failure-threshold",
// "health-listen", "ready-file". known is false when name is not a health
// option. The environment variable OXIOS_INIT_READINESS_PERIOD maps to the
// name "readiness-period" (lower case, '_' -> '-').
func (c *Config) Set(name, value string) (known bool, err error) { return false, nil }

// ChildState is what the supervisor reports about the main child.
type ChildState struct {
	PID      int    // 0 when not running
	State    string // "starting", "running", "backoff", "stopping", "exited"
	Restarts int
	Backoff  time.Duration // current backoff delay, 0 when none
}

// Hooks connect the monitor to the supervisor without an import cycle.
type Hooks struct {
	Restart func(reason string) // liveness or startup failure
	Child   func() ChildState   // for /status and /metrics
}

// Monitor owns the probe runners and the exposure of their results.
type Monitor struct{}

// NewMonitor validates cfg and prepares (does not start) the monitor.
func NewMonitor(cfg Config, hooks Hooks, log *logrus.Logger) (*Monitor, error) {
	return &Monitor{}, nil
}

// Start opens the health endpoint, if configured. It must be called before
// the first child starts.
func (m *Monitor) Start() error { return nil }

// ChildStarted resets every probe and starts the runners for the child
// whose PID is pid (listen:// matches sockets against its process tree).
func (m *Monitor) ChildStarted(pid int) {}

// ChildExited stops the runners and marks the daemon not ready.
func (m *Monitor) ChildExited(status int) {}

// Close stops everything and removes the ready file.
func (m *Monitor) Close() error { return nil }

// Query asks the supervisor listening on addr for the state of one kind
// ("readiness", "liveness", "startup"); nil means 200. It backs
// `oxios-init probe KIND`.
func Query(addr, kind string, timeout time.Duration) error { return nil }
