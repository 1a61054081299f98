package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// LSB status exit codes (init-script actions).
const (
	lsbRunning    = 0
	lsbNotRunning = 3
	lsbUnknown    = 4
)

func statusCommand() *command {
	return &command{
		name: "status", synopsis: "[--json] [-n N | --no-logs]",
		summary: "running (exit 0) or not (exit 3), with readiness, probes and the log tail",
		help: `Print the daemon's state. The first line is the old layer's wording
(running (PID n), stopped, stale (...), orphaned (...)); below it: ready or
not and since when, uptime and restarts inside the container, the last probe
results, the image and its digest, the URL, the log file, the containerd
socket in use and the last log lines.

Exit codes (LSB): 0 running, 3 not running, 4 unknown (containerd
unreachable), 2 bad command line or config. --json prints the same as one
JSON object (schema: docs/status-json.md).`,
		setup: func(fs *flagSet) runFunc {
			var o statusOptions
			o.lines = 10
			fs.Bool(&o.json, "json", "", "print the status as JSON (stable schema: docs/status-json.md)")
			fs.Int(&o.lines, "lines", "n", "N", "show the last N log lines (default 10)")
			fs.Bool(&o.noLogs, "no-logs", "", "show no log lines")
			return noArgs("status", func(e *env) int { return cmdStatus(e, o) })
		},
	}
}

type statusOptions struct {
	json, noLogs bool
	lines        int
}

// statusJSON is `status --json`: the Description plus the containerd
// socket in use.
type statusJSON struct {
	*task.Description
	Containerd *addressChoice `json:"containerd"`
}

func cmdStatus(e *env, o statusOptions) int {
	if o.noLogs {
		o.lines = 0
	}
	return withRuntimeOr(e, lsbUnknown, func(c *conn) int {
		d, err := c.r.Describe(context.Background(), task.DescribeOptions{LogLines: o.lines})
		if err != nil {
			report(e.stderr, err)
			return lsbUnknown
		}
		describeUpgrade(d, c.cfg)
		if o.json {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			enc.Encode(statusJSON{Description: d, Containerd: c.choice})
		} else {
			printStatus(e.stdout, d, c.choice, time.Now())
		}
		if d.Running() {
			return lsbRunning
		}
		return lsbNotRunning
	}, func(cfg *config.Config) { outageNote(e.stderr, cfg) })
}

// outageNote: while containerd is unreachable the task cannot be
// inspected, but whether the daemon still answers can be told, and an
// operator wants both facts (exit stays 4: the state is unknown).
func outageNote(w io.Writer, cfg *config.Config) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Container.Port))
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		fmt.Fprintf(w, "oxios: nothing answers on %s either\n", addr)
		return
	}
	c.Close()
	fmt.Fprintf(w, "oxios: the daemon still answers on %s; only containerd is unreachable\n", addr)
}

// printStatus writes the first line, then a systemctl-status-like block.
func printStatus(w io.Writer, d *task.Description, ch *addressChoice, now time.Time) {
	fmt.Fprintln(w, d.String())
	field := func(name, format string, a ...any) {
		fmt.Fprintf(w, "%12s: %s\n", name, fmt.Sprintf(format, a...))
	}
	if d.Running() {
		field("ready", "%s", readyLine(d, now))
		field("uptime", "%s (started %s), %d restarts inside the container", ago(d.UptimeSeconds), stamp(d.StartedAt), d.Restarts)
		label := "probes:"
		for _, kind := range d.ProbeKinds() {
			fmt.Fprintf(w, "%13s %s\n", label, probeLine(kind, d.Probes[kind], now))
			label = ""
		}
	}
	field("image", "%s %s", d.Image, orDash(d.ImageDigest))
	if d.PreviousImageDigest != "" {
		field("previous", "%s (oxios rollback)", d.PreviousImageDigest)
	}
	if d.UpgradeStep != "" {
		field("upgrade", "at step %s", d.UpgradeStep)
	}
	field("url", "%s", d.URL)
	field("log", "%s", d.Log)
	for _, l := range d.Details() {
		field("warning", "%s", l)
	}
	if ch != nil {
		field("containerd", "%s (%s)", ch.Address, ch.Reason)
	}
	if len(d.LogTail) > 0 {
		fmt.Fprintf(w, "\n-- last %d log lines (%s) --\n", len(d.LogTail), d.Log)
		for _, l := range d.LogTail {
			writeLogLine(w, l)
		}
	}
}

func readyLine(d *task.Description, now time.Time) string {
	if !d.Ready {
		if p, ok := d.Probes["readiness"]; ok && p.Failures > 0 {
			return fmt.Sprintf("no (%d readiness failures in a row)", p.Failures)
		}
		return "no"
	}
	if d.ReadySince == nil {
		return "yes"
	}
	return fmt.Sprintf("yes, since %s (%s ago)", stamp(d.ReadySince), ago(now.Sub(*d.ReadySince).Seconds()))
}

func probeLine(kind string, p task.ProbeResult, now time.Time) string {
	res := printable(p.Result)
	if res == "" {
		res = "not run yet"
	}
	if p.Detail != "" {
		res += " (" + printable(p.Detail) + ")"
	}
	when := ""
	if p.Time != nil {
		when = fmt.Sprintf(", %s ago", ago(now.Sub(*p.Time).Seconds()))
	}
	return fmt.Sprintf("%-9s %s %s%s", printable(kind), printable(p.Spec), res, when)
}

// ago rounds a duration for reading: 850ms, 12s, 3m4s, 2h5m.
func ago(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func orDash(s string) string {
	if s == "" {
		return "(digest unknown)"
	}
	return s
}
