package hostsvc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Manager is the host's service manager.
type Manager string

const (
	Systemd Manager = "systemd"
	Launchd Manager = "launchd"
)

// Runner runs a service-manager command (systemctl, launchctl) and returns
// its combined output. Tests of the install logic replace it; the boot test
// runs the real systemctl inside a booted machine.
type Runner func(name string, args ...string) ([]byte, error)

// ExecRunner runs the command for real.
func ExecRunner(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// Installer installs and removes the service for one manager.
type Installer struct {
	Manager Manager
	// Path is the unit or plist file.
	Path string
	// LogDir holds launchd's stdout/stderr file for the CLI.
	LogDir string
	// User selects the per-user service (systemd --user, a LaunchAgent);
	// Install refuses a Spec for the other kind.
	User bool
	// UID is the user whose launchd domain (gui/UID) a --user job joins.
	UID int
	Run Runner
	// Running reports whether the service manager is up on this host; nil
	// means it is. Without it the file is still written (it takes effect at
	// the next boot) but nothing is reloaded or started.
	Running func() bool
	// Out receives one line per step done (or, with DryRun, to be done).
	Out io.Writer
}

// Options are the install and uninstall switches.
type Options struct {
	DryRun bool // print the file (or the steps) and change nothing
	// NoEnable writes the file and reloads the manager only. By default
	// install enables the service at boot, as an admin expects from
	// installing a service; it does not start it now unless Now.
	NoEnable bool
	Now      bool // also start it now (implies enabling)
}

// ErrNotRunning is returned when the service manager is not running here
// (a container, a chroot, a host whose PID 1 is not systemd).
var ErrNotRunning = errors.New("the service manager is not running on this host")

// CommandError is a service-manager command that failed.
type CommandError struct {
	Args   []string
	Output string
	Err    error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += ": " + out
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// PathError is a file the installer could not write or remove; errors.Is
// with fs.ErrPermission tells the caller a privilege problem.
type PathError struct {
	Op   string // "write", "remove", "create directory"
	Path string
	Err  error
}

func (e *PathError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err) }
func (e *PathError) Unwrap() error { return e.Err }

// DefaultPaths returns where the unit or plist goes for the manager, for
// the system or (user) for the invoking user.
func DefaultPaths(m Manager, user bool) (file, logDir string, err error) {
	home, herr := os.UserHomeDir()
	if user && herr != nil {
		return "", "", fmt.Errorf("a --user service needs $HOME: %w", herr)
	}
	switch m {
	case Systemd:
		if !user {
			return filepath.Join("/etc/systemd/system", UnitName), "", nil
		}
		base := os.Getenv("XDG_CONFIG_HOME")
		if base == "" || !filepath.IsAbs(base) {
			base = filepath.Join(home, ".config")
		}
		return filepath.Join(base, "systemd", "user", UnitName), "", nil
	case Launchd:
		if !user {
			return filepath.Join("/Library/LaunchDaemons", Label+".plist"), "/Library/Logs/oxios", nil
		}
		return filepath.Join(home, "Library", "LaunchAgents", Label+".plist"),
			filepath.Join(home, "Library", "Logs", "oxios"), nil
	}
	return "", "", fmt.Errorf("unknown service manager %q", m)
}

// Render returns the file for s.
func (in *Installer) Render(s Spec) ([]byte, error) {
	if in.Manager == Launchd {
		return RenderPlist(s, in.LogDir)
	}
	return RenderUnit(s)
}

// Install writes the service file atomically (a second install replaces the
// first), with s.AutoUpdate the automatic update's files next to it (and
// without it removes them), reloads the manager, enables it at boot unless
// opts.NoEnable, and with opts.Now starts it.
func (in *Installer) Install(s Spec, opts Options) error {
	if s.User != in.User {
		// A user unit in the system's directory (or the reverse) would
		// install without error and never run as meant.
		return fmt.Errorf("spec (User=%v) and installer (User=%v) disagree on the kind of service", s.User, in.User)
	}
	data, err := in.Render(s)
	if err != nil {
		return err
	}
	upgrade, err := in.renderUpgrade(s)
	if err != nil {
		return err
	}
	if opts.DryRun {
		return in.printFiles(data, upgrade)
	}
	if err := in.writeFiles(append([]file{{in.Path, data}}, upgrade...)); err != nil {
		return err
	}
	running := in.Running == nil || in.Running()
	if s.AutoUpdate == "" {
		if err := in.dropUpgrade(running, false, false); err != nil {
			return err
		}
	}
	if !running {
		if opts.Now {
			return fmt.Errorf("%w: wrote %s, but cannot start it now", ErrNotRunning, in.Path)
		}
		fmt.Fprintf(in.Out, "%s is not running on this host: wrote %s, reloaded and started nothing\n", in.Manager, in.Path)
		return nil
	}
	for _, step := range in.installSteps(opts, s.AutoUpdate != "") {
		if err := in.run(step); err != nil {
			return err
		}
	}
	return nil
}

// writeFiles writes each file atomically, and launchd's log directory.
func (in *Installer) writeFiles(files []file) error {
	for _, f := range files {
		if err := writeAtomic(f.path, f.data, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(in.Out, "wrote %s\n", f.path)
	}
	if in.Manager == Launchd && in.LogDir != "" {
		if err := os.MkdirAll(in.LogDir, 0o755); err != nil {
			return &PathError{Op: "create directory", Path: in.LogDir, Err: err}
		}
	}
	return nil
}

// printFiles is a dry run's output: the service file as it would be
// written, then each automatic-update file under a comment naming it.
func (in *Installer) printFiles(data []byte, more []file) error {
	if _, err := in.Out.Write(data); err != nil {
		return err
	}
	for _, f := range more {
		if _, err := fmt.Fprintf(in.Out, "\n# %s\n%s", f.path, f.data); err != nil {
			return err
		}
	}
	return nil
}

// Uninstall stops and disables the service and its automatic update,
// removes their files (and no other), and reloads. A service that is not
// installed is not an error.
func (in *Installer) Uninstall(opts Options) error {
	_, err := os.Lstat(in.Path)
	installed := !errors.Is(err, fs.ErrNotExist)
	if !installed && len(existing(in.upgradePaths())) == 0 {
		fmt.Fprintf(in.Out, "not installed: no %s\n", in.Path)
		return nil
	}
	// Fail before stopping anything when the file cannot be removed: a
	// half-done uninstall (service stopped, file still there) helps nobody.
	if err := checkWritableDir(filepath.Dir(in.Path)); err != nil && !opts.DryRun {
		return &PathError{Op: "remove", Path: in.Path, Err: err}
	}
	running := in.Running == nil || in.Running()
	if !running {
		// Nothing to stop or reload; removing the files is the whole job.
		fmt.Fprintf(in.Out, "%s is not running on this host: only removing the files\n", in.Manager)
	}
	// The automatic update first: a run it started must not bring the
	// daemon back after it was stopped.
	if err := in.dropUpgrade(running, opts.DryRun, true); err != nil {
		return err
	}
	if !installed {
		if running && in.Manager == Systemd {
			return in.runOrPrint(step{args: in.systemctl("daemon-reload")}, opts.DryRun)
		}
		return nil
	}
	before, after := in.uninstallSteps()
	if !running {
		before, after = nil, nil
	}
	for _, step := range before {
		if err := in.runOrPrint(step, opts.DryRun); err != nil {
			return err
		}
	}
	if err := in.remove(in.Path, opts.DryRun); err != nil {
		return err
	}
	for _, step := range after {
		if err := in.runOrPrint(step, opts.DryRun); err != nil {
			return err
		}
	}
	return nil
}

func (in *Installer) remove(path string, dryRun bool) error {
	if dryRun {
		fmt.Fprintf(in.Out, "would remove %s\n", path)
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &PathError{Op: "remove", Path: path, Err: err}
	}
	fmt.Fprintf(in.Out, "removed %s\n", path)
	return nil
}

// step is one service-manager command; a step that may fail (unloading a
// job that is not loaded) is tolerated.
type step struct {
	args     []string
	tolerate bool
}

func (in *Installer) systemctl(args ...string) []string {
	if in.User {
		return append([]string{"systemctl", "--user"}, args...)
	}
	return append([]string{"systemctl"}, args...)
}

func (in *Installer) launchdDomain() string {
	if in.User {
		return "gui/" + strconv.Itoa(in.UID)
	}
	return "system"
}

func (in *Installer) installSteps(opts Options, autoUpdate bool) []step {
	enable := !opts.NoEnable || opts.Now
	if in.Manager == Launchd {
		steps := in.launchdLoad(Label, in.Path, enable)
		if opts.Now {
			steps = append(steps, step{args: []string{"launchctl", "kickstart", in.launchdDomain() + "/" + Label}})
		}
		if autoUpdate {
			steps = append(steps, in.launchdLoad(UpgradeLabel, in.upgradePaths()[0], enable)...)
		}
		return steps
	}
	steps := []step{{args: in.systemctl("daemon-reload")}}
	units := []string{UnitName}
	if autoUpdate {
		// The timer follows the service: enabled with it, started with it.
		units = append(units, UpgradeTimerName)
	}
	switch {
	case opts.Now:
		steps = append(steps, step{args: in.systemctl(append([]string{"enable", "--now"}, units...)...)})
	case enable:
		steps = append(steps, step{args: in.systemctl(append([]string{"enable"}, units...)...)})
	}
	return steps
}

// launchdLoad (re)loads the job label from path.
func (in *Installer) launchdLoad(label, path string, enable bool) []step {
	d := in.launchdDomain()
	// bootout first: bootstrap refuses a label that is already loaded,
	// and a reinstall must replace the old job, not fail on it.
	steps := []step{{args: []string{"launchctl", "bootout", d + "/" + label}, tolerate: true}}
	if enable {
		// enable before bootstrap: launchd refuses to bootstrap a job
		// whose label an earlier `launchctl disable` left disabled.
		steps = append(steps, step{args: []string{"launchctl", "enable", d + "/" + label}})
	}
	// bootstrap loads the job; RunAtLoad starts the service's (launchd
	// has no "loaded but stopped" for such a job); the update's waits
	// for its calendar.
	return append(steps, step{args: []string{"launchctl", "bootstrap", d, path}})
}

func (in *Installer) uninstallSteps() (before, after []step) {
	if in.Manager == Launchd {
		d := in.launchdDomain()
		return []step{{args: []string{"launchctl", "bootout", d + "/" + Label}, tolerate: true}}, nil
	}
	// disable --now = stop + disable; the stop runs ExecStopPost, which
	// removes the task even if the CLI is gone.
	return []step{{args: in.systemctl("disable", "--now", UnitName)}},
		[]step{
			{args: in.systemctl("daemon-reload")},
			{args: in.systemctl("reset-failed", UnitName), tolerate: true},
		}
}

func (in *Installer) runOrPrint(s step, dryRun bool) error {
	if dryRun {
		fmt.Fprintf(in.Out, "would run: %s\n", strings.Join(s.args, " "))
		return nil
	}
	return in.run(s)
}

func (in *Installer) run(s step) error {
	out, err := in.Run(s.args[0], s.args[1:]...)
	if err != nil {
		if s.tolerate {
			return nil
		}
		return &CommandError{Args: s.args, Output: string(bytes.TrimSpace(out)), Err: err}
	}
	fmt.Fprintf(in.Out, "ran: %s\n", strings.Join(s.args, " "))
	return nil
}
