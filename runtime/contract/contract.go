// Package contract is what the host (oxios) and the supervisor inside the
// container (oxios-init) must agree on, said once: the environment that
// carries oxios-init's options, the health endpoint's paths, and the
// report it serves at /status. Both sides import it; it imports nothing of
// theirs, so neither can drift from the other without a compile error.
package contract

import "time"

// EnvPrefix starts every oxios-init option's variable: option --NAME-PART
// is OXIOS_INIT_NAME_PART. Runtimes that inject an init pass no flags, so
// every option has one.
const EnvPrefix = "OXIOS_INIT_"

// EnvName is the variable of oxios-init option name ("readiness-period"
// -> "OXIOS_INIT_READINESS_PERIOD").
func EnvName(option string) string {
	b := []byte(EnvPrefix + option)
	for i := len(EnvPrefix); i < len(b); i++ {
		switch c := b[i]; {
		case c == '-':
			b[i] = '_'
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// OptionName is EnvName's inverse: the option a variable sets, and
// whether it is one of oxios-init's at all.
func OptionName(env string) (string, bool) {
	if len(env) <= len(EnvPrefix) || env[:len(EnvPrefix)] != EnvPrefix {
		return "", false
	}
	b := []byte(env[len(EnvPrefix):])
	for i, c := range b {
		switch {
		case c == '_':
			b[i] = '-'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b), true
}

// Paths inside the container. The host keeps RUN_DIR/ID private (root,
// 0700) and mounts two of its subdirectories into the container:
//
//   - RunMount (host RUN_DIR/ID/ctr, read-write, owned by the container's
//     user): oxios-init's health socket and ready file. The host never
//     trusts what is in it and reaches it only through a directory fd.
//   - NotifyMount (host RUN_DIR/ID/notify, read-only, owned by root): the
//     host's sd_notify socket, where oxios-init reports readiness.
const (
	RunMount     = "/run/oxios"
	ReadyFile    = RunMount + "/ready"
	HealthSocket = RunMount + "/health.sock"
	NotifyMount  = "/run/oxios-notify"
	// NotifySocket is oxios-init's NOTIFY_SOCKET: the host's readiness
	// event.
	NotifySocket = NotifyMount + "/notify.sock"
	// NotifyTokenEnv carries the per-container secret oxios-init adds to
	// each notification (NotifyTokenField=TOKEN): it proves the sender
	// where the host cannot see the sender's PID. oxios-init removes it
	// from the daemon's environment.
	NotifyTokenEnv   = EnvPrefix + "NOTIFY_TOKEN"
	NotifyTokenField = "OXIOS_TOKEN"
)

// The oxios-init options the host sets from its config (init.* keys).
const (
	OptRestart      = "restart"
	OptRewrite      = "rewrite"
	OptReadiness    = "readiness"
	OptLiveness     = "liveness"
	OptStartup      = "startup"
	OptReadyFile    = "ready-file"
	OptHealthListen = "health-listen"
	OptGrace        = "grace"
	OptLock         = "lock"
	OptStale        = "stale"
	OptNotifyToken  = "notify-token"
	OptLogFormat    = "log-format"
)

// The health endpoint's paths (oxios-init --health-listen).
const (
	PathLivez    = "/livez"
	PathReadyz   = "/readyz"
	PathStartupz = "/startupz"
	PathStatus   = "/status"
	PathMetrics  = "/metrics"
)

// MaxReport bounds a /status document: the host reads at most this much
// of what the container serves.
const MaxReport = 64 << 10

// Report is the JSON document served at /status.
type Report struct {
	Child   ChildReport            `json:"child"`
	Ready   bool                   `json:"ready"`
	Live    bool                   `json:"live"`
	Started bool                   `json:"started"`
	Probes  map[string]ProbeReport `json:"probes"`
	// DaemonStatus is the daemon's last sd_notify STATUS= text (notify://).
	DaemonStatus string `json:"daemon_status,omitempty"`
}

// ChildReport is the supervisor's view of the daemon.
type ChildReport struct {
	PID      int     `json:"pid"`
	State    string  `json:"state"` // starting, running, backoff, stopping, exited
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
