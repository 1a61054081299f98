package main

import (
	"context"
	"fmt"

	"github.com/a7garden/oxios/runtime/task"
	"github.com/a7garden/oxios/runtime/upgrade"
)

// followUpgrades lets `oxios start --foreground` stay attached through an
// upgrade or rollback that another oxios process runs: the task's exit
// is then the upgrade's doing, said to systemd as a reload. Re-attaching
// finishes the upgrade first if its process died midway, as a start does.
func followUpgrades(o *task.ForegroundOptions, e *env, c *conn) {
	cfg := c.cfg
	o.Reattach = func(ctx context.Context) (*task.Started, error) {
		recoverFirst(e, c)
		return c.r.Start(ctx)
	}
	o.Upgrading = func() (string, bool) {
		rec, err := upgrade.InProgress(cfg)
		if err != nil || rec == nil {
			return "", false
		}
		return upgradeStatus(rec), true
	}
	o.Outcome = func() string {
		h, err := upgrade.History(cfg, 1)
		if err != nil || len(h) == 0 {
			return ""
		}
		return outcomeStatus(&h[0])
	}
}

// upgradeStatus is STATUS= while rec runs.
func upgradeStatus(rec *upgrade.Record) string {
	if rec.Step == upgrade.StepRollingBack {
		return "rolling back to " + versionName(rec.From)
	}
	if rec.Kind == upgrade.KindRollback {
		return "rolling back to " + versionName(rec.To)
	}
	return "upgrading to " + versionName(rec.To)
}

// outcomeStatus is how the last upgrade or rollback ended, for STATUS=.
func outcomeStatus(rec *upgrade.Record) string {
	switch rec.Outcome {
	case upgrade.Upgraded:
		return string(rec.Kind) + " to " + versionName(rec.To)
	case upgrade.RolledBack:
		return fmt.Sprintf("%s to %s rolled back (%s)", rec.Kind, versionName(rec.To), rec.Failure)
	}
	return string(rec.Kind) + " " + string(rec.Outcome)
}

// versionName is v as STATUS= shows it: the digest cut as history
// prints it.
func versionName(v upgrade.Version) string {
	if v.Digest == "" {
		return v.Ref
	}
	return v.Ref + "@" + short(v.Digest)
}
