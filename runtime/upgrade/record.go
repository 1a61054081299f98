package upgrade

import (
	"time"
)

// Step names what an upgrade is about to do. The record is written with
// the step before the step runs, so an interrupted upgrade says where it
// stopped (Recover reads it).
type Step string

// The steps, in order. Before StepStopping the old daemon has not been
// touched; from StepStarting on, image.ref names the new image.
const (
	StepFetch       Step = "fetch"        // pulling or importing the new image
	StepRecorded    Step = "recorded"     // rollback target recorded and pinned
	StepStopping    Step = "stopping"     // draining the old daemon
	StepSnapshot    Step = "snapshot"     // copying the data dir (upgrade.snapshot_data)
	StepStarting    Step = "starting"     // image.ref moved; the new daemon starting
	StepVerifying   Step = "verifying"    // ready; inside upgrade.verify_for
	StepRollingBack Step = "rolling-back" // back to From
	StepDone        Step = "done"         // finished; Outcome says how
)

// Outcome is how an upgrade or rollback ended.
type Outcome string

// The outcomes.
const (
	// Upgraded: the new daemon passed the verification window.
	Upgraded Outcome = "upgraded"
	// RolledBack: the new daemon failed; the old one runs again.
	RolledBack Outcome = "rolled-back"
	// Unchanged: nothing to do (--if-newer and the same digest), or the
	// new image could not be had: the old daemon was never stopped.
	Unchanged Outcome = "unchanged"
	// Failed: the rollback failed too; no daemon runs (said so).
	Failed Outcome = "failed"
	// Recovered: an interrupted upgrade, finished by a later command.
	Recovered Outcome = "recovered"
)

// Kind is what a record is of.
type Kind string

// The kinds.
const (
	KindUpgrade  Kind = "upgrade"
	KindRollback Kind = "rollback"
)

// Version is one image the daemon ran or is to run.
type Version struct {
	// Ref is the image's name in containerd as image.ref had it (the
	// container's image).
	Ref string `json:"ref"`
	// Digest is the image's target digest (manifest or index).
	Digest string `json:"digest"`
	// Hash is the container's spec hash (config + image), the
	// oxios.hash label: equal hashes mean the same container spec.
	Hash string `json:"hash,omitempty"`
}

// Record is one upgrade or rollback: the state file's in-progress entry,
// then a history entry, and what Upgrade and Rollback return (the
// report).
type Record struct {
	ID   string `json:"id"` // start time, UTC, e.g. 20261203T154012.123Z
	Kind Kind   `json:"kind"`
	// Source is what was asked for: a ref, "archive PATH", or "" (the
	// configured image.ref pulled again).
	Source string  `json:"source,omitempty"`
	From   Version `json:"from"`
	To     Version `json:"to"`
	Step   Step    `json:"step"`
	// PID is the oxios process that ran it.
	PID       int        `json:"pid"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	Outcome   Outcome    `json:"outcome,omitempty"`
	// Failure says what failed: the new daemon (not ready, exited, lost
	// liveness in the window), or the step that could not be done.
	Failure string `json:"failure,omitempty"`
	// LogTail is the new daemon's last log lines when it failed.
	LogTail []string `json:"log_tail,omitempty"`
	// DowntimeSeconds: from the old daemon's drain to the first readiness
	// of the daemon that runs at the end (the new one, or the old one
	// again after a rollback); 0 when the old daemon was never stopped.
	DowntimeSeconds float64 `json:"downtime_seconds,omitempty"`
	// RollbackSeconds: from the failure to the old daemon ready again.
	RollbackSeconds float64 `json:"rollback_seconds,omitempty"`
	// Snapshot is the data dir copy (upgrade.snapshot_data), "" = none;
	// DataRestored says it was put back.
	Snapshot     string `json:"snapshot,omitempty"`
	DataRestored bool   `json:"data_restored,omitempty"`
	// Note is what a recovery or an unusual path did, for a human.
	Note string `json:"note,omitempty"`
}

// State is the state file: the versions oxios knows and the history.
type State struct {
	// Current is the image the daemon runs (after the last upgrade or
	// rollback); nil before the first.
	Current *Version `json:"current,omitempty"`
	// Previous is the rollback target: `oxios rollback` goes to it, and
	// its image is kept in containerd (PinName) so that it can.
	Previous *Version `json:"previous,omitempty"`
	// InProgress is the upgrade or rollback being done, or interrupted
	// (no process holds the upgrade lock).
	InProgress *Record `json:"in_progress,omitempty"`
	// History is the finished ones, oldest first, at most MaxHistory.
	History []Record `json:"history,omitempty"`
}

// MaxHistory bounds State.History.
const MaxHistory = 50

// finish ends r with outcome at now.
func (r *Record) finish(o Outcome, now time.Time) {
	r.Step, r.Outcome = StepDone, o
	t := now.UTC()
	r.EndedAt = &t
}
