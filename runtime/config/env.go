package config

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/a7garden/oxios/runtime/contract"
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
		contract.OptReadyFile:    contract.ReadyFile,
		contract.OptHealthListen: "unix:" + contract.HealthSocket,
		contract.OptGrace:        c.StopGrace().String(),
		contract.OptLock:         sub(c.Init.Lock),
		contract.OptStale:        c.staleList(),
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

// PodEnv is container.env then kubernetes.env, expanded: the daemon's
// environment in a pod.
func (c *Config) PodEnv() []string {
	out := c.ContainerEnv()
	for _, e := range c.Kubernetes.Env {
		out = append(out, c.Expand(e))
	}
	return out
}

// PodMemory is the pod's memory limit: resources.memory, else
// kubernetes.memory (0 = none).
func (c *Config) PodMemory() Size {
	if c.Resources.Memory != 0 {
		return c.Resources.Memory
	}
	return c.Kubernetes.Memory
}
