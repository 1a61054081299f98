package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/a7garden/oxios/hostsvc"
	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/upgrade"
)

// installFlags are the flags of `oxios install` and `oxios uninstall`.
type installFlags struct {
	user     bool
	dryRun   bool
	now      bool
	noEnable bool
	watchdog time.Duration
	// autoUpdate is --auto-update's calendar ("" = none).
	autoUpdate string
}

func (f *installFlags) define(fs *flagSet, install bool) {
	fs.Bool(&f.user, "user", "", "the per-user service (systemd --user, a LaunchAgent) instead of the system one")
	fs.Bool(&f.dryRun, "dry-run", "", "print what would be written or run, change nothing")
	if install {
		fs.Bool(&f.now, "now", "", "also start the service now")
		fs.Bool(&f.noEnable, "no-enable", "", "write the service file only: do not enable it at boot")
		fs.Duration(&f.watchdog, "watchdog", "", "D", "systemd WatchdogSec (e.g. 30s); fed while the daemon is live; 0 = off")
		fs.Optional(&f.autoUpdate, "auto-update", "CALENDAR", hostsvc.DefaultCalendar,
			"also run 'oxios upgrade --if-newer' on CALENDAR (default daily, at a randomized time)")
	}
}

func installCommand() *command {
	return &command{
		name: "install", synopsis: "[--user] [--dry-run] [--now] [--no-enable] [--watchdog D] [--auto-update[=CALENDAR]]",
		summary: "write the systemd unit / launchd job (also: daemon install)",
		help: `Write the systemd unit (Linux) or launchd plist (macOS) that runs
'oxios start --foreground' with the config this command resolves (--config,
else the lookup order), reload the service manager and enable the service
at boot. --now also starts it; --no-enable writes the file only; --dry-run
prints what would be written or run.

--auto-update adds a timer (systemd: oxios-upgrade.timer, OnCalendar=
CALENDAR with up to an hour of randomized delay; launchd: a calendar job,
hourly, daily, weekly, monthly or HH:MM) that runs 'oxios upgrade
--if-newer': it upgrades only when the registry serves a digest other than
the running one. An install without it removes the timer; uninstall
removes everything install wrote.`,
		setup: func(fs *flagSet) runFunc {
			f := &installFlags{}
			f.define(fs, true)
			return func(e *env, args []string) int { return cmdInstall(e, f, args) }
		},
	}
}

func uninstallCommand() *command {
	return &command{
		name: "uninstall", synopsis: "[--user] [--dry-run]",
		summary: "stop, disable and remove the service (also: daemon uninstall)",
		help:    "Stop and disable the service, remove its unit or plist, and reload the service manager.",
		setup: func(fs *flagSet) runFunc {
			f := &installFlags{}
			f.define(fs, false)
			return func(e *env, args []string) int { return cmdUninstall(e, f, args) }
		},
	}
}

// daemonCommand keeps the old layer's spelling: oxios daemon install|uninstall.
func daemonCommand() *command {
	return &command{
		name: "daemon", summary: "install | uninstall, the old layer's spelling",
		help: "The old layer's spelling of 'oxios install' and 'oxios uninstall'.",
		sub:  []*command{installCommand(), uninstallCommand()},
	}
}

// cmdInstall is `oxios install [--user] [--dry-run] [--now] [--config FILE]`.
func cmdInstall(e *env, f *installFlags, args []string) int {
	if len(args) > 0 {
		hint := "see 'oxios install --help'"
		if f.autoUpdate != "" {
			hint = fmt.Sprintf("a calendar goes after '=': --auto-update=%s", shellQuote(args[0]))
		}
		fmt.Fprintf(e.stderr, "oxios install: unexpected argument %q; %s\n", args[0], hint)
		return exitUsage
	}
	stdout, stderr := e.stdout, e.stderr
	spec, missing, err := hostsvc.ResolveSpec(hostsvc.SpecOptions{Config: e.common.config, User: f.user, Watchdog: f.watchdog, AutoUpdate: f.autoUpdate})
	if err != nil {
		fmt.Fprintf(stderr, "oxios install: %v\n", err)
		return exitFail
	}
	if missing {
		// The unit names the file with --config, and a named file that is
		// missing is an error: say so now rather than at the first boot.
		fmt.Fprintf(stderr, "oxios install: note: %s does not exist yet; the service fails to start (exit 2) until it does: write it first ('oxios config show > %s' writes the defaults for you to edit)\n", spec.Config, spec.Config)
	}
	if f.autoUpdate != "" && !missing {
		warnNoUpdateSource(stderr, spec.Config, f.user)
	}
	in, err := hostsvc.NewInstaller(f.user, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "oxios install: %v\n", err)
		return exitFail
	}
	if err := in.Install(spec, hostsvc.Options{DryRun: f.dryRun, Now: f.now, NoEnable: f.noEnable}); err != nil {
		fmt.Fprintf(stderr, "oxios install: %v\n", err)
		// The hint names the config this run resolved: under sudo, the
		// lookup order would find root's config, not this user's.
		printHint(stderr, installHint(err, f.user, append(f.args("install"), "--config", spec.Config)))
		return exitFail
	}
	if !f.dryRun && !f.now {
		fmt.Fprintln(stderr, startHint(in.Manager, f.user, !f.noEnable))
	}
	return exitOK
}

// warnNoUpdateSource warns when the config at path gives the timer's
// `oxios upgrade --if-newer` nowhere to look: every run would fail. A
// warning, not a refusal: each run reads the config anew, so fixing it
// later is enough, and the timer need not be installed again.
func warnNoUpdateSource(w io.Writer, path string, user bool) {
	load := config.Load
	if user {
		load = config.LoadForUser
	}
	cfg, err := load(path)
	if err != nil {
		return // ResolveSpec read it: nothing new to say
	}
	if err := upgrade.CheckUpdateSource(cfg); err != nil {
		fmt.Fprintf(w, "oxios install: warning: --auto-update: %v, so every automatic run of `oxios upgrade --if-newer` would fail; in %s set image.ref to a registry image (e.g. registry.example.com/oxios:stable) or image.archive to the file new builds are written to\n",
			err, path)
	}
}

// args spells the flags back for a hint's command line.
func (f *installFlags) args(cmd string) []string {
	out := []string{cmd}
	for _, b := range []struct {
		on   bool
		flag string
	}{{f.user, "--user"}, {f.dryRun, "--dry-run"}, {f.now, "--now"}, {f.noEnable, "--no-enable"}} {
		if b.on {
			out = append(out, b.flag)
		}
	}
	if f.watchdog > 0 {
		out = append(out, "--watchdog", f.watchdog.String())
	}
	if f.autoUpdate != "" {
		out = append(out, "--auto-update="+f.autoUpdate)
	}
	return out
}

// cmdUninstall is `oxios uninstall [--user] [--dry-run]`: stop, disable,
// remove, reload.
func cmdUninstall(e *env, f *installFlags, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "oxios uninstall: unexpected argument %q; see 'oxios uninstall --help'\n", args[0])
		return exitUsage
	}
	in, err := hostsvc.NewInstaller(f.user, e.stdout)
	if err != nil {
		fmt.Fprintf(e.stderr, "oxios uninstall: %v\n", err)
		return exitFail
	}
	if err := in.Uninstall(hostsvc.Options{DryRun: f.dryRun}); err != nil {
		fmt.Fprintf(e.stderr, "oxios uninstall: %v\n", err)
		printHint(e.stderr, installHint(err, f.user, f.args("uninstall")))
		return exitFail
	}
	return exitOK
}

func printHint(w io.Writer, hint string) {
	if hint != "" {
		fmt.Fprintln(w, hint)
	}
}

// installHint is the next step after a failure, said at the CLI boundary:
// what to run. "run with sudo" is said only to a user who is not root (to
// root, a permission error means a read-only or protected path instead).
func installHint(err error, user bool, args []string) string {
	root := os.Geteuid() == 0
	var pe *hostsvc.PathError
	var ce *hostsvc.CommandError
	switch {
	case errors.As(err, &pe) && errors.Is(err, fs.ErrPermission) && !root && !user:
		exe, _ := os.Executable()
		hint := fmt.Sprintf("hint: %s is writable only by root; run with sudo:\n  sudo %s %s",
			filepath.Dir(pe.Path), shellQuote(exe), shellJoin(args))
		if args[0] == "install" {
			hint += fmt.Sprintf("\nor install a service for your user only:\n  %s %s --user", shellQuote(exe), shellJoin(args))
		}
		return hint
	case errors.As(err, &pe):
		return fmt.Sprintf("hint: check that %s is writable (a read-only file system, or a protected path, stops even root)", filepath.Dir(pe.Path))
	case errors.Is(err, hostsvc.ErrNotRunning):
		return "hint: boot the host with systemd (or start oxios with `oxios start`); install without --now to only write the unit"
	case errors.As(err, &ce):
		cmd := shellJoin(ce.Args)
		if !root && !user {
			return "hint: run it yourself with sudo: sudo " + cmd
		}
		return "hint: the file is in place; fix the cause above, then run: " + cmd
	}
	return ""
}

func startHint(m hostsvc.Manager, user, enabled bool) string {
	if m == hostsvc.Launchd {
		return "note: launchd loaded the job; it starts at boot (or login); `oxios status` shows it"
	}
	u := ""
	if user {
		u = "--user "
	}
	if enabled {
		return fmt.Sprintf("note: enabled at boot; start it now with: systemctl %sstart %s (or install with --now)", u, hostsvc.UnitName)
	}
	return fmt.Sprintf("note: not enabled; start it at boot and now with: systemctl %senable --now %s", u, hostsvc.UnitName)
}

// shellQuote quotes s for a POSIX shell when it needs it, for hints the
// user can paste.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '-' || r == '_' || r == '.' || r == '=' || r == ':' || r == ',' || r == '@' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
