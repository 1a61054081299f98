package config

import (
	"sort"
	"strconv"
	"strings"
)

// Paths inside the container. The host keeps RUN_DIR/ID private (root,
// 0700) and mounts two of its subdirectories into the container:
//
//   - RunMount (host RUN_DIR/ID/ctr, read-write, owned by the container's
//     user): oxios-init's health socket and ready file. The host never
//     trusts what is in it and reaches it only through a directory fd.
//   - NotifyMount (host RUN_DIR/ID/notify, read-only, owned by root): the
//     host's sd_notify socket, where oxios-init reports readiness.
const (
	RunMount     = "/run/oxios"
	ReadyFile    = RunMount + "/ready"
	HealthSocket = RunMount + "/health.sock"
	NotifyMount  = "/run/oxios-notify"
	// NotifySocket is oxios-init's NOTIFY_SOCKET: the host's readiness
	// event.
	NotifySocket = NotifyMount + "/notify.sock"
	// NotifyTokenEnv carries the per-container secret oxios-init adds to
	// each notification (NotifyTokenField=TOKEN): it proves the sender
	// where the host cannot see the sender's PID. oxios-init removes it
	// from the daemon's environment.
	NotifyTokenEnv   = "OXIOS_INIT_NOTIFY_TOKEN"
	NotifyTokenField = "OXIOS_TOKEN"
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
		"STALE":         strings.Join(c.Init.StaleFiles, ":"),
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
