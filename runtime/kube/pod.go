package kube

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/a7garden/oxios/health"
	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/contract"
)

// Pod-only settings: what a cluster needs that a host does not.
const (
	// HealthPort is where oxios-init's health endpoint listens in the pod,
	// for the kubelet's probes (on a host it is a unix socket).
	HealthPort = 9000
	// graceMargin is how much longer the kubelet waits than oxios-init's
	// grace before its own SIGKILL: oxios-init must finish first.
	graceMargin = 20 * time.Second
	// startupThreshold is the kubelet's startup budget in 1 s periods
	// (at least container.start_timeout); oxios-init's own is longer by
	// initStartupExtra, a backstop that never acts first.
	startupThreshold = 60
	initStartupExtra = 30
	// initLivenessThreshold makes oxios-init's liveness budget (its
	// period x 6) longer than the kubelet's (10 s x 3).
	initLivenessThreshold = 6
)

// pod is what the templates read; every string is already quoted.
type pod struct {
	Source, ID, Name, Image, PullPolicy string
	LocalImage, ImageCommand            bool
	Command, Args                       string
	Env                                 []envVar
	Port, HealthPort                    int
	Grace                               time.Duration
	TerminationGrace                    int64
	StartupThreshold                    int
	UID, GID                            int
	NonRoot, ReadOnly                   bool
	MemoryLimit, CPULimit               string
	MemoryRequest, CPURequest           string
	Pids                                int64
	DataMount                           string
}

type envVar struct {
	Comment     []string
	Name, Value string
}

func newPod(cfg *config.Config) (*pod, error) {
	if err := checkName(cfg.Container.ID); err != nil {
		return nil, err
	}
	uid, gid := ImageUser, ImageUser
	if cfg.Container.User != "" {
		uid, gid, _ = config.ParseUser(cfg.Container.User) // validated by config
	}
	p := &pod{
		Source: cfg.Source, ID: cfg.Container.ID, Name: q(cfg.Container.ID), Image: q(cfg.Image.Ref),
		PullPolicy: pullPolicy(cfg.Image.Pull), LocalImage: strings.HasPrefix(cfg.Image.Ref, "localhost/") && cfg.Image.Pull != "always",
		Port: cfg.Container.Port, HealthPort: HealthPort,
		Grace: cfg.StopGrace(), TerminationGrace: int64((cfg.StopGrace() + graceMargin + time.Second - 1) / time.Second),
		StartupThreshold: max(startupThreshold, int(math.Ceil(cfg.Container.StartTimeout.D().Seconds()))),
		UID:              uid, GID: gid, NonRoot: uid != 0, ReadOnly: cfg.Container.ReadOnly,
		Pids: cfg.Resources.Pids, DataMount: q(cfg.Container.DataMount),
	}
	if p.Source == "" {
		p.Source = "the built-in defaults"
	} else if strings.ContainsFunc(p.Source, unicode.IsControl) {
		p.Source = q(p.Source) // a newline would end the comment
	}
	p.setProcess(cfg)
	p.setResources(cfg)
	p.Env = p.env(cfg)
	return p, nil
}

func pullPolicy(pull string) string {
	switch pull {
	case "always":
		return "Always"
	case "never":
		return "Never"
	}
	return "IfNotPresent"
}

// setProcess: container.command replaces ENTRYPOINT and CMD, container.args
// only CMD, as on a host; the image's are spelled out otherwise.
func (p *pod) setProcess(cfg *config.Config) {
	cmd, args := cfg.Container.Command, make([]string, len(cfg.Container.Args))
	for i, a := range cfg.Container.Args {
		args[i] = cfg.Expand(a)
	}
	if len(cmd) == 0 {
		p.ImageCommand, cmd = true, ImageEntrypoint
		if len(args) == 0 {
			args = ImageCmd
		}
	}
	p.Command = flow(cmd)
	if len(args) > 0 {
		p.Args = flow(args)
	}
}

// setResources: limits from [resources] (kubernetes.memory when
// resources.memory is 0); requests small, never above the limits.
func (p *pod) setResources(cfg *config.Config) {
	p.MemoryRequest, p.CPURequest = "64Mi", "50m"
	if m := int64(cfg.PodMemory()); m > 0 {
		p.MemoryLimit = quantity(m)
		if m < 64<<20 {
			p.MemoryRequest = p.MemoryLimit
		}
	}
	if c := cfg.Resources.CPUs; c > 0 {
		milli := int64(math.Ceil(c * 1000))
		p.CPULimit = strconv.FormatInt(milli, 10) + "m"
		if milli < 50 {
			p.CPURequest = p.CPULimit
		}
	}
}

// quantity writes a byte count as a Kubernetes quantity.
func quantity(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return q(strconv.FormatInt(n, 10)) // a bare number would be a YAML int
}

// initEnv is config.InitEnv for a pod: the host-only options (the ready
// file, the unix health socket) give way to the pod's (an address the
// kubelet probes, JSON logs, no restarts: the kubelet restarts), and a
// startup probe gates liveness until the daemon first answers.
func initEnv(cfg *config.Config) map[string]string {
	env := map[string]string{}
	for _, kv := range cfg.InitEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	delete(env, contract.EnvName(contract.OptReadyFile))
	delete(env, contract.EnvName(contract.OptNotifyToken))
	env[contract.EnvName(contract.OptHealthListen)] = "0.0.0.0:" + strconv.Itoa(HealthPort)
	env[contract.EnvName(contract.OptRestart)] = "never"
	env[contract.EnvName(contract.OptLogFormat)] = "json"
	startup := contract.EnvName(contract.OptStartup)
	for _, alt := range []string{startup, contract.EnvName(contract.OptLiveness), contract.EnvName(contract.OptReadiness)} {
		if env[startup] == "" {
			env[startup] = env[alt]
		}
	}
	setDefault(env, "OXIOS_INIT_STARTUP_PERIOD", "1s")
	setDefault(env, "OXIOS_INIT_STARTUP_FAILURE_THRESHOLD", strconv.Itoa(max(startupThreshold, int(math.Ceil(cfg.Container.StartTimeout.D().Seconds())))+initStartupExtra))
	setDefault(env, "OXIOS_INIT_LIVENESS_FAILURE_THRESHOLD", strconv.Itoa(initLivenessThreshold))
	return env
}

func setDefault(m map[string]string, k, v string) {
	if m[k] == "" {
		m[k] = v
	}
}

// initOrder is the order of the known OXIOS_INIT_* variables; others
// follow, sorted.
var initOrder = []string{"GRACE", "REWRITE", "RESTART", "STARTUP", "STARTUP_PERIOD", "STARTUP_FAILURE_THRESHOLD",
	"READINESS", "LIVENESS", "LIVENESS_FAILURE_THRESHOLD", "LOCK", "STALE", "HEALTH_LISTEN", "LOG_FORMAT"}

func (p *pod) env(cfg *config.Config) []envVar {
	m := initEnv(cfg)
	var names []string
	for _, n := range initOrder {
		if _, ok := m["OXIOS_INIT_"+n]; ok {
			names = append(names, "OXIOS_INIT_"+n)
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(names, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	var out []envVar
	for _, k := range append(names, rest...) {
		out = append(out, envVar{Comment: p.comment(k, m), Name: name(k), Value: q(m[k])})
	}
	return append(out, daemonEnv(cfg)...)
}

// daemonEnv is container.env then kubernetes.env, each group under a
// comment that says where it comes from.
func daemonEnv(cfg *config.Config) []envVar {
	var out []envVar
	n := len(cfg.Container.Env)
	for i, kv := range cfg.PodEnv() {
		k, v, _ := strings.Cut(kv, "=")
		e := envVar{Name: name(k), Value: q(v)}
		switch i {
		case 0:
			if n > 0 {
				e.Comment = []string{"container.env, as on a host."}
				break
			}
			fallthrough
		case n:
			e.Comment = []string{"kubernetes.env: for the pod only (e.g. the daemon listens on the",
				"pod's address, not only loopback, so that the Service reaches it)."}
		}
		out = append(out, e)
	}
	return out
}

// comment explains an OXIOS_INIT_* variable whose value the pod sets.
func (p *pod) comment(k string, m map[string]string) []string {
	lp := health.DefaultPeriod
	switch k {
	case "OXIOS_INIT_REWRITE":
		if m[k] == config.DefaultRewrite {
			return []string{"The daemon drains only on SIGINT."}
		}
		return []string{"init.rewrite: signals the daemon needs rewritten."}
	case "OXIOS_INIT_RESTART":
		return []string{"The kubelet restarts the container, so that restartCount and",
			"CrashLoopBackOff tell the truth (see the top of this file)."}
	case "OXIOS_INIT_STARTUP":
		return []string{"Started = the daemon answers this probe. Until then /readyz is",
			"503 and liveness does not run, here or in the kubelet. The budget",
			fmt.Sprintf("(%s x %s) is longer than the startupProbe's, which decides.",
				m["OXIOS_INIT_STARTUP_PERIOD"], m["OXIOS_INIT_STARTUP_FAILURE_THRESHOLD"])}
	case "OXIOS_INIT_LIVENESS":
		return []string{fmt.Sprintf("oxios-init's own liveness budget (%v x %s) is longer than the",
			lp, m["OXIOS_INIT_LIVENESS_FAILURE_THRESHOLD"]), "livenessProbe's: the kubelet restarts a hung daemon first."}
	case "OXIOS_INIT_LOCK":
		return []string{"Held for oxios-init's life: a second oxios-init on the same",
			"data (a second pod on the same node and volume) refuses to",
			"start. flock is local to a node: across nodes only the",
			"volume's access mode (ReadWriteOncePod) keeps pods apart."}
	case "OXIOS_INIT_HEALTH_LISTEN":
		return []string{"The endpoint the kubelet probes (/startupz, /readyz, /livez)",
			"and Prometheus scrapes (/metrics)."}
	}
	return nil
}
