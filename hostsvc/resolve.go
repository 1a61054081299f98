package hostsvc

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/coreos/go-systemd/v22/util"

	"github.com/a7garden/oxios/runtime/config"
)

// SpecOptions are what `oxios install` was told.
type SpecOptions struct {
	// Config is --config; "" means the lookup order of `oxios start`.
	Config   string
	User     bool
	Watchdog time.Duration
	// AutoUpdate is --auto-update's calendar ("" = none).
	AutoUpdate string
}

// ResolveSpec resolves what the service runs: this binary, by its absolute
// path, and the config file `oxios start` would read, made absolute
// (systemd and launchd start it from /). The unit's timeouts follow that
// config; missing reports that the file does not exist yet: the unit's
// timeouts then follow the built-in defaults, and the service cannot start
// until the file is written (the unit names it with --config).
func ResolveSpec(o SpecOptions) (s Spec, missing bool, err error) {
	exe, err := executable()
	if err != nil {
		return Spec{}, false, err
	}
	if !o.User {
		// The system service runs this binary as root at every boot.
		if err := config.CheckTrusted(exe); err != nil {
			return Spec{}, false, fmt.Errorf("oxios binary %s: %w", exe, err)
		}
	}
	path, err := configPath(o)
	if err != nil {
		return Spec{}, false, err
	}
	s = Spec{Binary: exe, Config: path, User: o.User, Watchdog: o.Watchdog,
		AutoUpdate: o.AutoUpdate, AutoUpdateOffset: hostOffset()}
	load := config.Load
	if o.User {
		load = config.LoadForUser // the service runs as the user, not as root
	}
	cfg, err := load(path)
	switch {
	case errors.Is(err, config.ErrNotFound):
		missing, cfg = true, config.Default()
	case err != nil:
		return Spec{}, false, err
	}
	s.Grace = cfg.StopGrace()
	// Readiness budget plus an image import on a slow disk.
	s.StartTimeout = max(DefaultStartTimeout, cfg.Container.StartTimeout.D()+time.Minute)
	return s, missing, nil
}

func executable() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.Abs(exe)
	}
	if err != nil {
		return "", fmt.Errorf("locate the oxios binary: %w", err)
	}
	return filepath.Clean(exe), nil
}

// configPath is the absolute path of the config file the service runs with.
func configPath(o SpecOptions) (string, error) {
	path, _ := config.Locate(o.Config)
	if o.User && o.Config == "" && os.Getenv(config.EnvVar) == "" && os.Geteuid() == 0 {
		// root asking for a --user service still means the user's config.
		path = config.UserPath()
	}
	if path == "" {
		return "", errors.New("no config path: pass --config FILE")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("--config %s: %w", path, err)
	}
	return abs, nil
}

// NewInstaller returns the installer for this host's service manager
// (systemd on Linux, launchd on macOS), for the system or (user) for the
// invoking user, running the real systemctl or launchctl.
func NewInstaller(user bool, out io.Writer) (*Installer, error) {
	var m Manager
	switch runtime.GOOS {
	case "linux":
		m = Systemd
	case "darwin":
		m = Launchd
	default:
		return nil, fmt.Errorf("no service manager support on %s (systemd on Linux, launchd on macOS)", runtime.GOOS)
	}
	file, logDir, err := DefaultPaths(m, user)
	if err != nil {
		return nil, err
	}
	in := &Installer{Manager: m, Path: file, LogDir: logDir, User: user, UID: os.Getuid(), Run: ExecRunner, Out: out}
	if m == Systemd && !user {
		in.Running = util.IsRunningSystemd // sd_booted(3)
	}
	return in, nil
}

// hostOffset places launchd's automatic update within the hour by the
// host's name: stable across reinstalls, different between hosts (what
// systemd's RandomizedDelaySec does at each run).
func hostOffset() time.Duration {
	name, _ := os.Hostname()
	h := fnv.New32a()
	h.Write([]byte(name))
	return time.Duration(h.Sum32()%60) * time.Minute
}
