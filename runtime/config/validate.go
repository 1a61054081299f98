package config

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// validID: containerd IDs are [A-Za-z0-9] then [A-Za-z0-9_.-], at most
// 76 bytes. (A loop, not a regexp: a package-level regexp is compiled at
// every CLI start, part of the latency of `oxios start`.)
func validID(s string) bool {
	if len(s) == 0 || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

func bad(key, format string, a ...any) error {
	return &fieldError{key: key, msg: fmt.Sprintf(format, a...)}
}

func (c *Config) validate() error {
	for _, check := range []func() error{c.checkContainerd, c.checkImage, c.checkContainer, c.checkLimits, c.checkInit, c.checkKubernetes, c.checkUpgrade} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkContainerd() error {
	if c.Containerd.Address == "" {
		return bad("containerd.address", "must name the containerd socket")
	}
	if !validID(c.Containerd.Namespace) {
		return bad("containerd.namespace", "%q is not a valid namespace", c.Containerd.Namespace)
	}
	if c.Containerd.Runtime == "" {
		return bad("containerd.runtime", "must name a shim such as io.containerd.runc.v2")
	}
	return nil
}

func (c *Config) checkImage() error {
	if c.Image.Ref == "" {
		return bad("image.ref", "must name an image reference")
	}
	switch c.Image.Pull {
	case "missing", "always", "never":
	default:
		return bad("image.pull", "expected \"missing\", \"always\" or \"never\", got %q", c.Image.Pull)
	}
	return nil
}

func (c *Config) checkContainer() error {
	k := c.Container
	if !validID(k.ID) {
		return bad("container.id", "%q is not a valid container id ([A-Za-z0-9][A-Za-z0-9_.-]*)", k.ID)
	}
	if k.Port < 1 || k.Port > 65535 {
		return bad("container.port", "expected 1-65535, got %d", k.Port)
	}
	for _, e := range k.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return bad("container.env", "expected NAME=VALUE, got %q", e)
		}
	}
	if _, _, ok := ParseUser(k.User); k.User != "" && !ok {
		return bad("container.user", "expected UID, UID:GID or \"root\", got %q", k.User)
	}
	for key, p := range map[string]string{"container.data_dir": k.DataDir, "container.log_dir": k.LogDir, "container.run_dir": k.RunDir} {
		if p == "" || !filepath.IsAbs(p) {
			return bad(key, "must be a path, got %q", p)
		}
	}
	if !filepath.IsAbs(k.DataMount) {
		return bad("container.data_mount", "must be an absolute path inside the container, got %q", k.DataMount)
	}
	if k.StartTimeout == 0 {
		return bad("container.start_timeout", "must be positive")
	}
	return nil
}

// ParseUser reads a numeric UID[:GID] (the GID defaults to the UID), or
// "root". Only numbers otherwise: the image is scratch and has no
// /etc/passwd to resolve names.
func ParseUser(u string) (uid, gid int, ok bool) {
	if u == "root" {
		return 0, 0, true
	}
	us, gs, hasGID := strings.Cut(u, ":")
	n, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return -1, -1, false
	}
	uid, gid = int(n), int(n)
	if hasGID {
		g, err := strconv.ParseUint(gs, 10, 32)
		if err != nil {
			return -1, -1, false
		}
		gid = int(g)
	}
	return uid, gid, true
}

func (c *Config) checkLimits() error {
	if c.Resources.CPUs < 0 {
		return bad("resources.cpus", "must be >= 0, got %v", c.Resources.CPUs)
	}
	if c.Resources.Pids < 0 {
		return bad("resources.pids", "must be >= 0, got %d", c.Resources.Pids)
	}
	if c.Resources.Memory != 0 && c.Resources.Memory < 4<<20 {
		return bad("resources.memory", "must be 0 (unlimited) or at least 4MiB")
	}
	if c.Logs.Driver != "file" && c.Logs.Driver != "journald" {
		return bad("logs.driver", "expected file or journald, got %q", c.Logs.Driver)
	}
	if s := c.Logs.JournalSocket; s != "" && !filepath.IsAbs(s) {
		return bad("logs.journal_socket", "must be an absolute path, got %q", s)
	}
	if c.Logs.MaxFiles < 0 {
		return bad("logs.max_files", "must be >= 0, got %d", c.Logs.MaxFiles)
	}
	return nil
}

// checkStale confines init.stale_files to the data mount: oxios-init
// removes them as root of the container's world, and the data mount is
// the one place the config says it may touch. A newline or NUL would
// split one path into two in OXIOS_INIT_STALE.
func (c *Config) checkStale() error {
	mount := filepath.Clean(c.Container.DataMount)
	for _, raw := range c.Init.StaleFiles {
		p := c.Expand(raw)
		if strings.ContainsAny(p, "\n\x00") {
			return bad("init.stale_files", "%q: newline or NUL in a path", raw)
		}
		if !filepath.IsAbs(p) || hasDotDot(p) {
			return bad("init.stale_files", "%q: want an absolute path without .. under container.data_mount (%s)", raw, mount)
		}
		clean := filepath.Clean(p)
		if clean == mount || mount != "/" && !strings.HasPrefix(clean, mount+"/") {
			return bad("init.stale_files", "%q is not under container.data_mount (%s)", raw, mount)
		}
	}
	for k := range c.Init.Extra {
		if isStaleOption(k) {
			return bad("init.extra", "%q: set init.stale_files instead (checked against container.data_mount)", k)
		}
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

func (c *Config) checkKubernetes() error {
	for _, e := range c.Kubernetes.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return bad("kubernetes.env", "expected NAME=VALUE, got %q", e)
		}
	}
	if m := c.Kubernetes.Memory; m != 0 && m < 4<<20 {
		return bad("kubernetes.memory", "must be 0 (no limit) or at least 4MiB")
	}
	return nil
}

func (c *Config) checkUpgrade() error {
	if p := c.Upgrade.StateDir; p == "" || !filepath.IsAbs(p) {
		return bad("upgrade.state_dir", "must be a path, got %q", p)
	}
	if c.Upgrade.StateDir == c.Container.DataDir || strings.HasPrefix(c.Upgrade.StateDir, c.Container.DataDir+"/") {
		return bad("upgrade.state_dir", "%s is inside container.data_dir (%s), which the container can write", c.Upgrade.StateDir, c.Container.DataDir)
	}
	return nil
}
