// Package config owns oxios' host-side configuration: the TOML schema, its
// built-in defaults (so no file is needed), the lookup order of the file,
// and validation with errors that name the file, line and key.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the whole file. Every field has a default (Default).
type Config struct {
	Containerd Containerd `toml:"containerd"`
	Image      Image      `toml:"image"`
	Container  Container  `toml:"container"`
	Resources  Resources  `toml:"resources"`
	Logs       Logs       `toml:"logs"`
	Init       Init       `toml:"init"`
	Kubernetes Kubernetes `toml:"kubernetes"`
	Upgrade    Upgrade    `toml:"upgrade"`

	// Source is the file the config came from ("" = built-in defaults).
	Source string `toml:"-"`
	// FileKeys are the keys Source sets, each with its line (0 = unknown).
	FileKeys map[string]int `toml:"-"`
}

// Containerd says which containerd to talk to and how it runs the task.
type Containerd struct {
	Address   string `toml:"address"`
	Namespace string `toml:"namespace"`
	// Runtime is the containerd shim; RuntimeBinary the OCI runtime it
	// execs. "" picks crun when installed (it starts containers faster
	// than runc), else runc.
	Runtime       string `toml:"runtime"`
	RuntimeBinary string `toml:"runtime_binary"`
	Snapshotter   string `toml:"snapshotter"`
}

// Image names the image and where it comes from when absent.
type Image struct {
	Ref     string `toml:"ref"`
	Archive string `toml:"archive"`
	// Pull: "missing" (import the archive, else pull the ref, when the
	// image is absent), "always" (pull the ref on every start), "never".
	Pull string `toml:"pull"`
	// PlainHTTP talks to the registry over http (a local registry).
	PlainHTTP bool `toml:"plain_http"`
}

// Container is the daemon's process and its mounts.
type Container struct {
	ID           string   `toml:"id"`
	Command      []string `toml:"command"`
	Args         []string `toml:"args"`
	Env          []string `toml:"env"`
	User         string   `toml:"user"`
	Port         int      `toml:"port"`
	DataDir      string   `toml:"data_dir"`
	DataMount    string   `toml:"data_mount"`
	LogDir       string   `toml:"log_dir"`
	RunDir       string   `toml:"run_dir"`
	StartTimeout Duration `toml:"start_timeout"`
	StopTimeout  Duration `toml:"stop_timeout"`
	ReadOnly     bool     `toml:"read_only_rootfs"`
	Seccomp32    bool     `toml:"seccomp_32bit"`
}

// Resources are runtime-spec limits; zero means unlimited (pids defaults
// to DefaultPids).
type Resources struct {
	Memory Size    `toml:"memory"`
	CPUs   float64 `toml:"cpus"`
	Pids   int64   `toml:"pids"`
}

// Logs is where the daemon's output goes: the per-container append-only
// log and its rotation, or the systemd journal.
type Logs struct {
	Driver        string `toml:"driver"`         // "file" or "journald"
	JournalSocket string `toml:"journal_socket"` // journald's; "" = the default one
	MaxSize       Size   `toml:"max_size"`
	MaxFiles      int    `toml:"max_files"`
}

// Init is handed to oxios-init as OXIOS_INIT_* variables (see Env).
type Init struct {
	Restart    string   `toml:"restart"`
	Rewrite    string   `toml:"rewrite"`
	Readiness  string   `toml:"readiness"`
	Liveness   string   `toml:"liveness"`
	Startup    string   `toml:"startup"`
	Lock       string   `toml:"lock"`
	StaleFiles []string `toml:"stale_files"`
	// Extra is passed verbatim (keys without the OXIOS_INIT_ prefix are
	// given it), for oxios-init options this file has no key for.
	Extra map[string]string `toml:"extra"`
}

// Kubernetes holds what only a pod needs (`oxios kube generate`); oxios
// start ignores it: on a host the daemon shares the host's network, in a
// pod it must listen on the pod's address, and a pod needs a memory limit
// for the scheduler even when a host runs the daemon without one.
type Kubernetes struct {
	// Env is added to container.env in the pod ({port}, {data} expanded).
	Env []string `toml:"env"`
	// Memory is the pod's memory limit when resources.memory is 0.
	Memory Size `toml:"memory"`
}

// Upgrade is `oxios upgrade` and `oxios rollback`.
type Upgrade struct {
	// VerifyFor is the verification window: after the new daemon is
	// ready it must stay live and ready, without a restart, this long, or
	// the upgrade is rolled back.
	VerifyFor Duration `toml:"verify_for"`
	// SnapshotData copies the data directory before the new daemon
	// starts (a reflink where the filesystem can) and puts the copy back
	// on a rollback.
	SnapshotData bool `toml:"snapshot_data"`
	// StateDir holds the upgrade record and history (and the data
	// snapshot): host-private, and it must survive a reboot.
	StateDir string `toml:"state_dir"`
}

// Paths the lookup order tries after --config and $OXIOS_CONFIG.
const (
	SystemPath = "/etc/oxios/config.toml"
	EnvVar     = "OXIOS_CONFIG"
)

// systemPath is SystemPath; a test points it at a scratch file so that
// the machine's own /etc/oxios does not decide its outcome.
var systemPath = SystemPath

// ErrNotFound is returned when an explicitly named file does not exist.
var ErrNotFound = errors.New("config file not found")

// Load finds and parses the config: flagPath, then $OXIOS_CONFIG, then the
// system or per-user file, then built-in defaults. As root, it refuses a
// file that another user can write (see ErrNotTrusted).
func Load(flagPath string) (*Config, error) {
	return load(flagPath, os.Geteuid() == 0)
}

// LoadForUser is Load without the root-only ownership checks, for a
// config that root reads but that runs as its owner: a --user service's.
func LoadForUser(flagPath string) (*Config, error) {
	return load(flagPath, false)
}

func load(flagPath string, strict bool) (*Config, error) {
	path, explicit := Locate(flagPath)
	if path == "" {
		return Default(), nil
	}
	data, err := readConfig(path, strict)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return Default(), nil
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := c.checkRuntimeBinary(strict); err != nil {
		return nil, located(path, data, err)
	}
	return c, nil
}

// Locate returns the file to read and whether it was named explicitly (a
// missing explicit file is an error, a missing default one is not).
func Locate(flagPath string) (string, bool) {
	if flagPath != "" {
		return flagPath, true
	}
	if p := os.Getenv(EnvVar); p != "" {
		return p, true
	}
	if os.Geteuid() == 0 {
		return systemPath, false
	}
	if p := UserPath(); p != "" {
		return p, false
	}
	return "", false
}

// UserPath is the per-user config file the lookup order tries when not
// root: $XDG_CONFIG_HOME/oxios/config.toml.
func UserPath() string {
	if p := userConfigDir(); p != "" {
		return filepath.Join(p, "oxios", "config.toml")
	}
	return ""
}

// Parse decodes data (read from path) over the defaults and validates it.
func Parse(path string, data []byte) (*Config, error) {
	c := Default()
	if err := decode(path, data, c); err != nil {
		return nil, err
	}
	c.Source, c.FileKeys = path, fileKeys(data)
	c.resolvePaths(filepath.Dir(path))
	if err := c.validate(); err != nil {
		return nil, located(path, data, err)
	}
	return c, nil
}

// resolvePaths makes relative paths relative to the config file, so a
// file means the same thing from any working directory.
func (c *Config) resolvePaths(dir string) {
	for _, p := range []*string{&c.Image.Archive, &c.Container.DataDir, &c.Container.LogDir, &c.Container.RunDir, &c.Upgrade.StateDir} {
		*p = expandHome(*p)
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[1:])
		}
	}
	return p
}

// StopGrace is how long stop waits between SIGTERM and SIGKILL.
func (c *Config) StopGrace() time.Duration { return c.Container.StopTimeout.D() }

// URL is where the daemon answers.
func (c *Config) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", c.Container.Port) }

// LogPath is the container's append-only log file.
func (c *Config) LogPath() string {
	return filepath.Join(c.Container.LogDir, c.Container.ID+".log")
}
