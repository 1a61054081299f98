package config

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Paths inside the container. RunMount is the host's per-container run
// directory, bind-mounted read-write: oxios-init writes its ready file and
// health socket there, and the host watches them.
const (
	RunMount     = "/run/oxios"
	ReadyFile    = RunMount + "/ready"
	HealthSocket = RunMount + "/health.sock"
	// NotifySocket is where oxios-init's sd_notify READY=1 goes (its
	// NOTIFY_SOCKET): the host's readiness event.
	NotifySocket = RunMount + "/notify.sock"
)

// InitEnv is the OXIOS_INIT_* environment handed to oxios-init: one
// mechanism for every supervisor option, named as oxios-init names them
// (cmd/oxios-init/options.go). {port} and {data} (container.data_mount)
// are substituted.
func (c *Config) InitEnv() []string {
	sub := c.Expand
	m := map[string]string{
		"RESTART":       c.Init.Restart,
		"REWRITE":       c.Init.Rewrite,
		"READINESS":     sub(c.Init.Readiness),
		"LIVENESS":      sub(c.Init.Liveness),
		"STARTUP":       sub(c.Init.Startup),
		"READY_FILE":    ReadyFile,
		"HEALTH_LISTEN": "unix:" + HealthSocket,
		"GRACE":         c.StopGrace().String(),
		"LOCK":          sub(c.Init.Lock),
		"STALE":         c.staleList(),
	}
	for k, v := range c.Init.Extra {
		m[strings.TrimPrefix(strings.ToUpper(k), "OXIOS_INIT_")] = sub(v)
	}
	var env []string
	for k, v := range m {
		if v != "" {
			env = append(env, "OXIOS_INIT_"+k+"="+v)
		}
	}
	sort.Strings(env)
	return env
}

// staleList is OXIOS_INIT_STALE: one path a line, since ':' (and any
// other character but newline and NUL, which validation refuses) may be
// part of a path.
func (c *Config) staleList() string {
	out := make([]string, len(c.Init.StaleFiles))
	for i, p := range c.Init.StaleFiles {
		out[i] = filepath.Clean(c.Expand(p))
	}
	return strings.Join(out, "\n")
}

// Expand substitutes {port} and {data} in a container.env or args value.
func (c *Config) Expand(s string) string {
	return strings.NewReplacer("{port}", strconv.Itoa(c.Container.Port), "{data}", c.Container.DataMount).Replace(s)
}

// ContainerEnv is container.env, expanded.
func (c *Config) ContainerEnv() []string {
	out := make([]string, len(c.Container.Env))
	for i, e := range c.Container.Env {
		out[i] = c.Expand(e)
	}
	return out
}
