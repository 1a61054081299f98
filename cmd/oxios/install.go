package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/a7garden/oxios/hostsvc"
)

// installFlags are the flags of `oxios install` and `oxios uninstall`.
type installFlags struct {
	user     bool
	dryRun   bool
	now      bool
	noEnable bool
	config   string
	watchdog time.Duration
}

func parseInstallFlags(name string, args []string, stderr io.Writer, install bool) (*installFlags, error) {
	f := &installFlags{}
	fs := flag.NewFlagSet("oxios "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.user, "user", false, "the per-user service (systemd --user, a LaunchAgent) instead of the system one")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print what would be written or run, change nothing")
	if install {
		fs.BoolVar(&f.now, "now", false, "also start the service now")
		fs.BoolVar(&f.noEnable, "no-enable", false, "write the service file only: do not enable it at boot")
		fs.StringVar(&f.config, "config", "", "config file the service runs with (default: the lookup order of `oxios start`)")
		fs.DurationVar(&f.watchdog, "watchdog", 0, "systemd WatchdogSec (e.g. 30s); oxios feeds it while the daemon is live; 0 = off")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		// fs.Parse printed its own errors; this one is ours to print.
		fmt.Fprintf(stderr, "oxios %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

// cmdInstall is `oxios install [--user] [--dry-run] [--now] [--config FILE]`.
func cmdInstall(args []string, stdout, stderr io.Writer) int {
	f, err := parseInstallFlags("install", args, stderr, true)
	if err != nil {
		return usageExit(err)
	}
	spec, missing, err := hostsvc.ResolveSpec(hostsvc.SpecOptions{Config: f.config, User: f.user, Watchdog: f.watchdog})
	if err != nil {
		fmt.Fprintf(stderr, "oxios install: %v\n", err)
		return 1
	}
	if missing {
		fmt.Fprintf(stderr, "oxios install: note: %s does not exist yet; the service will run with the built-in defaults until it does\n", spec.Config)
	}
	in, err := hostsvc.NewInstaller(f.user, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "oxios install: %v\n", err)
		return 1
	}
	if err := in.Install(spec, hostsvc.Options{DryRun: f.dryRun, Now: f.now, NoEnable: f.noEnable}); err != nil {
		fmt.Fprintf(stderr, "oxios install: %v\n", err)
		// The hint names the config this run resolved: under sudo, the
		// lookup order would find root's config, not this user's.
		printHint(stderr, installHint(err, f.user, append(append([]string{"install"}, withoutConfig(args)...), "--config", spec.Config)))
		return 1
	}
	if !f.dryRun && !f.now {
		fmt.Fprintln(stderr, startHint(in.Manager, f.user, !f.noEnable))
	}
	return 0
}

// cmdUninstall is `oxios uninstall [--user] [--dry-run]`: stop, disable,
// remove, reload.
func cmdUninstall(args []string, stdout, stderr io.Writer) int {
	f, err := parseInstallFlags("uninstall", args, stderr, false)
	if err != nil {
		return usageExit(err)
	}
	in, err := hostsvc.NewInstaller(f.user, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "oxios uninstall: %v\n", err)
		return 1
	}
	if err := in.Uninstall(hostsvc.Options{DryRun: f.dryRun}); err != nil {
		fmt.Fprintf(stderr, "oxios uninstall: %v\n", err)
		printHint(stderr, installHint(err, f.user, append([]string{"uninstall"}, args...)))
		return 1
	}
	return 0
}

func printHint(w io.Writer, hint string) {
	if hint != "" {
		fmt.Fprintln(w, hint)
	}
}

func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
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

// withoutConfig drops --config FILE / --config=FILE from args.
func withoutConfig(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" || a == "-config":
			i++
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
		default:
			out = append(out, a)
		}
	}
	return out
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
