package config

import (
	"sort"
	"strconv"
	"strings"

	"github.com/a7garden/oxios/runtime/contract"
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
		contract.OptRestart:      c.Init.Restart,
		contract.OptRewrite:      c.Init.Rewrite,
		contract.OptReadiness:    sub(c.Init.Readiness),
		contract.OptLiveness:     sub(c.Init.Liveness),
		contract.OptStartup:      sub(c.Init.Startup),
		contract.OptReadyFile:    ReadyFile,
		contract.OptHealthListen: "unix:" + HealthSocket,
		contract.OptGrace:        c.StopGrace().String(),
		contract.OptLock:         sub(c.Init.Lock),
		contract.OptStale:        strings.Join(c.Init.StaleFiles, ":"),
	}
	for k, v := range c.Init.Extra {
		// init.extra names an option as oxios-init spells it, or as
		// its variable: both reach the same OXIOS_INIT_* name.
		if opt, ok := contract.OptionName(strings.ToUpper(k)); ok {
			k = opt
		}
		m[strings.ToLower(k)] = sub(v)
	}
	var env []string
	for k, v := range m {
		if v != "" {
			env = append(env, contract.EnvName(k)+"="+v)
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
