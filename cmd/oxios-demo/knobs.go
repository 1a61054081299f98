package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The environment variables other engineers' tests and demos set. The names
// are a contract (TEAM.md): never rename one.
const (
	envListen       = "OXIOS_DEMO_LISTEN"
	envListenDelay  = "OXIOS_DEMO_LISTEN_DELAY"
	envReadyDelay   = "OXIOS_DEMO_READY_DELAY"
	envExitAfter    = "OXIOS_DEMO_EXIT_AFTER"
	envExitCode     = "OXIOS_DEMO_EXIT_CODE"
	envSigterm      = "OXIOS_DEMO_SIGTERM"
	envStopDelay    = "OXIOS_DEMO_STOP_DELAY"
	envOrphans      = "OXIOS_DEMO_ORPHANS"
	envHangAfter    = "OXIOS_DEMO_HANG_AFTER"
	envUnreadyAfter = "OXIOS_DEMO_UNREADY_AFTER"
	envDataDir      = "OXIOS_DEMO_DATA_DIR"
	envSdNotify     = "OXIOS_DEMO_SD_NOTIFY"
)

var knownEnv = map[string]bool{
	envListen: true, envListenDelay: true, envReadyDelay: true, envExitAfter: true,
	envExitCode: true, envSigterm: true, envStopDelay: true, envOrphans: true,
	envHangAfter: true, envUnreadyAfter: true, envDataDir: true, envSdNotify: true,
}

// maxOrphans bounds OXIOS_DEMO_ORPHANS: the knob exists to leave a few
// strays for a supervisor to clean up, not to fork-bomb the test machine.
const maxOrphans = 256

// sigtermAction is what the demo does on SIGTERM.
type sigtermAction string

const (
	// sigtermExit dies at once, without a drain, like the real daemon.
	sigtermExit sigtermAction = "exit"
	// sigtermIgnore logs the signal and goes on serving.
	sigtermIgnore sigtermAction = "ignore"
	// sigtermDrain treats SIGTERM like SIGINT.
	sigtermDrain sigtermAction = "drain"
)

// knobs are the fault and timing knobs, all from the environment. A zero
// duration means "not set" for the *After knobs (hasX says whether it was).
type knobs struct {
	Listen      string // empty: not set
	ListenDelay time.Duration
	// ReadyDelay, UnreadyAfter and HangAfter count from the moment the
	// socket listens; ExitAfter counts from process start, so it can fire
	// before the socket is open (like the real daemon exiting without a model).
	ReadyDelay      time.Duration
	ExitAfter       time.Duration
	HasExitAfter    bool
	ExitCode        int
	HasExitCode     bool
	Sigterm         sigtermAction
	StopDelay       time.Duration
	Orphans         int
	HangAfter       time.Duration
	HasHangAfter    bool
	UnreadyAfter    time.Duration
	HasUnreadyAfter bool
	DataDir         string
	// SdNotify sends READY=1 to NOTIFY_SOCKET when the demo becomes
	// ready (and STOPPING=1 when it stops), as a Type=notify daemon does.
	SdNotify bool
	Unknown  []string // OXIOS_DEMO_* names that are not knobs (typos)
}

// knobError names the variable and the bad value; main turns it into exit 2.
type knobError struct {
	Var, Value string
	Reason     string
}

func (e *knobError) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.Var, e.Value, e.Reason)
}

// parseKnobs reads every knob through lookup (os.LookupEnv in main). environ
// is only used to find misspelt OXIOS_DEMO_* variables.
func parseKnobs(lookup func(string) (string, bool), environ []string) (knobs, error) {
	k := knobs{Sigterm: sigtermExit}
	var err error
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	dur := func(name string, dst *time.Duration, set *bool) {
		v, ok := get(name)
		if !ok || err != nil {
			return
		}
		d, perr := time.ParseDuration(v)
		switch {
		case perr != nil:
			err = &knobError{name, v, "not a Go duration (e.g. 500ms, 2s, 1m)"}
		case d < 0:
			err = &knobError{name, v, "must not be negative"}
		default:
			*dst = d
			if set != nil {
				*set = true
			}
		}
	}
	integer := func(name string, dst *int, lo, hi int, set *bool) {
		v, ok := get(name)
		if !ok || err != nil {
			return
		}
		n, perr := strconv.Atoi(v)
		switch {
		case perr != nil:
			err = &knobError{name, v, "not an integer"}
		case n < lo || n > hi:
			err = &knobError{name, v, fmt.Sprintf("must be between %d and %d", lo, hi)}
		default:
			*dst = n
			if set != nil {
				*set = true
			}
		}
	}

	if v, ok := get(envListen); ok {
		if verr := checkListenAddr(v); verr != nil {
			return k, &knobError{envListen, v, verr.Error()}
		}
		k.Listen = v
	}
	dur(envListenDelay, &k.ListenDelay, nil)
	dur(envReadyDelay, &k.ReadyDelay, nil)
	dur(envExitAfter, &k.ExitAfter, &k.HasExitAfter)
	integer(envExitCode, &k.ExitCode, 0, 255, &k.HasExitCode)
	dur(envStopDelay, &k.StopDelay, nil)
	integer(envOrphans, &k.Orphans, 0, maxOrphans, nil)
	dur(envHangAfter, &k.HangAfter, &k.HasHangAfter)
	dur(envUnreadyAfter, &k.UnreadyAfter, &k.HasUnreadyAfter)
	if err != nil {
		return k, err
	}
	if v, ok := get(envSigterm); ok {
		switch a := sigtermAction(strings.ToLower(v)); a {
		case sigtermExit, sigtermIgnore, sigtermDrain:
			k.Sigterm = a
		default:
			return k, &knobError{envSigterm, v, "must be exit, ignore or drain"}
		}
	}
	if v, ok := get(envDataDir); ok {
		k.DataDir = v
	}
	if v, ok := get(envSdNotify); ok {
		switch v {
		case "1":
			k.SdNotify = true
		case "0":
		default:
			return k, &knobError{envSdNotify, v, "must be 1 or 0"}
		}
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "OXIOS_DEMO_") && !knownEnv[name] {
			k.Unknown = append(k.Unknown, name)
		}
	}
	sort.Strings(k.Unknown)
	return k, nil
}
