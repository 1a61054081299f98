package hostsvc

import (
	"fmt"
	"math"
	"path/filepath"
	"time"
	"unicode/utf8"
)

// Label is the launchd job label; the old layer used the same one, so an
// install replaces its job.
const Label = "com.a7garden.oxios"

// Job is the launchd job, encoded by howett.net/plist (never by a string
// template: every string is escaped by the encoder). Field order is the
// encoder's sorted key order, which keeps the output deterministic.
type Job struct {
	Label             string            `plist:"Label"`
	ProgramArguments  []string          `plist:"ProgramArguments"`
	RunAtLoad         bool              `plist:"RunAtLoad"`
	KeepAlive         KeepAlive         `plist:"KeepAlive"`
	ThrottleInterval  int               `plist:"ThrottleInterval"`
	ExitTimeOut       int               `plist:"ExitTimeOut"`
	ProcessType       string            `plist:"ProcessType"`
	WorkingDirectory  string            `plist:"WorkingDirectory"`
	StandardOutPath   string            `plist:"StandardOutPath"`
	StandardErrorPath string            `plist:"StandardErrorPath"`
	Environment       map[string]string `plist:"EnvironmentVariables,omitempty"`
}

// KeepAlive restarts the job only when it did not exit successfully: the
// launchd spelling of systemd's Restart=on-failure.
type KeepAlive struct {
	SuccessfulExit bool `plist:"SuccessfulExit"`
}

// JobFor returns the launchd job for s. logDir receives the CLI's own
// stdout and stderr (the daemon's log is the task's log, kept by oxios).
func JobFor(s Spec, logDir string) (Job, error) {
	if err := s.validate(); err != nil {
		return Job{}, err
	}
	s = s.withDefaults()
	log := filepath.Join(logDir, "oxiosd.log")
	for _, v := range []string{s.Binary, s.Config, log} {
		if err := xmlSafe(v); err != nil {
			return Job{}, err
		}
	}
	return Job{
		Label:            Label,
		ProgramArguments: s.StartArgs(),
		RunAtLoad:        true,
		KeepAlive:        KeepAlive{SuccessfulExit: false},
		// launchd's minimum spacing between two starts of the job.
		ThrottleInterval: ceilSeconds(s.RestartDelay),
		// launchd sends SIGTERM, then SIGKILL after ExitTimeOut seconds: it
		// must outlast the task's grace period, as TimeoutStopSec does.
		ExitTimeOut: ceilSeconds(s.StopTimeout()),
		// Not "Background": macOS throttles CPU and I/O of such jobs, which
		// would slow the CLI's readiness wait and its watchdog of the task.
		ProcessType:       "Standard",
		WorkingDirectory:  "/",
		StandardOutPath:   log,
		StandardErrorPath: log,
	}, nil
}

// RenderPlist renders the launchd job for s as an XML property list.
func RenderPlist(s Spec, logDir string) ([]byte, error) {
	job, err := JobFor(s, logDir)
	if err != nil {
		return nil, err
	}
	return encodePlist(job)
}

// ceilSeconds: launchd's intervals are whole seconds; round up so that a
// timeout is never shorter than asked.
func ceilSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// xmlSafe refuses what an XML 1.0 plist cannot carry: bytes that are not
// UTF-8 and the control characters outside XML's Char production. (macOS
// file systems store UTF-8 names, so no real path is lost.)
func xmlSafe(v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%q is not UTF-8, which a launchd plist cannot hold", v)
	}
	for _, r := range v {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return fmt.Errorf("%q holds control character %U, which a launchd plist cannot hold", v, r)
		}
	}
	return nil
}
