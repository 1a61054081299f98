package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Built-in defaults. Port, probes and the SIGTERM->SIGINT rewrite fit the
// real oxios daemon: it serves 127.0.0.1:4200, answers
// /health and /health/ready, and drains only on SIGINT.
const (
	DefaultAddress   = "/run/containerd/containerd.sock"
	DefaultNamespace = "oxios"
	DefaultID        = "oxios"
	DefaultRef       = "localhost/oxios:latest"
	DefaultArchive   = "build/oxios-image.tar"
	DefaultPort      = 4200
	DefaultRuntime   = "io.containerd.runc.v2"
	DefaultRewrite   = "15:2"
	DefaultRestart   = "never"
	DefaultReadiness = "http://127.0.0.1:{port}/health/ready"
	DefaultLiveness  = "http://127.0.0.1:{port}/health"
	DefaultLock      = "{data}/.oxios-init.lock"
	// DefaultPids bounds the container's processes: without it a fork
	// bomb in the container exhausts the host's PIDs. An explicit 0 in
	// the file means no limit.
	DefaultPids = 4096
	// DefaultPodMemory is the pod's memory limit when resources.memory
	// sets none: a pod without one can take its node's memory.
	DefaultPodMemory = 512 << 20
	// DefaultVerifyFor is upgrade.verify_for: long enough for a daemon
	// that fails its first liveness checks (period 10 s, 3 failures) to
	// show it.
	DefaultVerifyFor = Duration(30 * time.Second)
)

// Default is the configuration used when no file exists.
func Default() *Config {
	data, logs, run := defaultDirs()
	state := defaultStateDir()
	return &Config{
		Containerd: Containerd{
			Address:     DefaultAddress,
			Namespace:   DefaultNamespace,
			Runtime:     DefaultRuntime,
			Snapshotter: "", // overlayfs when containerd has it working, else native
		},
		Image: Image{Ref: DefaultRef, Archive: defaultArchive(), Pull: "missing"},
		Container: Container{
			ID:           DefaultID,
			Port:         DefaultPort,
			DataDir:      data,
			DataMount:    "/data",
			LogDir:       logs,
			RunDir:       run,
			StartTimeout: Duration(15 * time.Second),
			StopTimeout:  Duration(10 * time.Second),
			ReadOnly:     true,
		},
		Resources: Resources{Pids: DefaultPids},
		Logs:      Logs{Driver: "file", MaxSize: 10 << 20, MaxFiles: 5},
		Init: Init{
			Restart:   DefaultRestart,
			Rewrite:   DefaultRewrite,
			Readiness: DefaultReadiness,
			Liveness:  DefaultLiveness,
			Lock:      DefaultLock,
		},
		Kubernetes: Kubernetes{Memory: DefaultPodMemory},
		Upgrade:    Upgrade{VerifyFor: DefaultVerifyFor, StateDir: state},
	}
}

// defaultDirs: FHS paths for root, XDG paths for a user.
func defaultDirs() (data, logs, run string) {
	if os.Geteuid() == 0 {
		return "/var/lib/oxios/data", "/var/log/oxios", "/run/oxios"
	}
	home, _ := os.UserHomeDir()
	data = xdg("XDG_DATA_HOME", filepath.Join(home, ".local", "share"), "oxios", "data")
	logs = xdg("XDG_STATE_HOME", filepath.Join(home, ".local", "state"), "oxios", "logs")
	run = xdg("XDG_RUNTIME_DIR", filepath.Join(home, ".cache"), "oxios")
	return data, logs, run
}

// defaultStateDir is upgrade.state_dir: not under the run dir, which is
// a tmpfs, since the history must survive a reboot.
func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/oxios/state"
	}
	home, _ := os.UserHomeDir()
	return xdg("XDG_STATE_HOME", filepath.Join(home, ".local", "state"), "oxios", "upgrade")
}

func xdg(env, fallback string, elem ...string) string {
	base := os.Getenv(env)
	if base == "" || !filepath.IsAbs(base) {
		base = fallback
	}
	return filepath.Join(append([]string{base}, elem...)...)
}

func userConfigDir() string {
	home, _ := os.UserHomeDir()
	return xdg("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
}

// defaultArchive finds build/oxios-image.tar next to the binary's bin/
// directory (a checkout running bin/oxios), else relative to the working
// directory.
func defaultArchive() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(filepath.Dir(exe)), DefaultArchive)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if wd, err := os.Getwd(); err == nil {
		return filepath.Join(wd, DefaultArchive)
	}
	return DefaultArchive
}

// RuntimeBinary is the OCI runtime to use: the configured one, else crun
// when installed, else runc ("" lets the shim use its own default).
func (c *Config) RuntimeBinary() string {
	if c.Containerd.RuntimeBinary != "" {
		return c.Containerd.RuntimeBinary
	}
	if p, err := exec.LookPath("crun"); err == nil && !hybridWithV2Controllers() {
		return p
	}
	return ""
}

// hybridWithV2Controllers: crun refuses cgroup "hybrid mode" (v1
// controllers plus a cgroup2 mount at /sys/fs/cgroup/unified) when any
// controller is attached to the v2 side ("drop all controllers from
// cgroupv2"); runc copes. Hybrid hosts with hugetlb on v2 exist.
func hybridWithV2Controllers() bool {
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return err == nil && len(strings.TrimSpace(string(b))) > 0
}
