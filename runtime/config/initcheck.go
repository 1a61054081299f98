package config

import (
	"strings"
	"time"

	"github.com/a7garden/oxios/health"
	"github.com/a7garden/oxios/runtime/contract"
)

// checkInit validates the init.* keys with the parsers oxios-init itself
// uses (supervisor's for policies and signals, health's for probes), so a
// value oxios-init would refuse fails `oxios start` here, before anything
// is created, naming the file, line and key, instead of surfacing later as
// a task that exited before it was ready.
func (c *Config) checkInit() error {
	if err := checkPolicy(c.Init.Restart); err != nil {
		return bad("init.restart", "%v", err)
	}
	if err := checkRewrites(c.Init.Rewrite); err != nil {
		return bad("init.rewrite", "%v (a comma-separated list of FROM:TO signals, e.g. \"15:2\" or \"TERM:INT\")", err)
	}
	hc := health.DefaultConfig()
	for _, p := range []struct{ key, opt, value string }{
		{"init.startup", contract.OptStartup, c.Init.Startup},
		{"init.readiness", contract.OptReadiness, c.Init.Readiness},
		{"init.liveness", contract.OptLiveness, c.Init.Liveness},
	} {
		if _, err := hc.Set(p.opt, c.Expand(p.value)); err != nil {
			return bad(p.key, "%v", err)
		}
	}
	for k, v := range c.Init.Extra {
		if isStaleOption(k) {
			continue // checkStale refuses it
		}
		if err := checkExtra(&hc, k, c.Expand(v)); err != nil {
			return bad("init.extra", "%s = %q: %v", k, v, err)
		}
	}
	if err := hc.Validate(); err != nil {
		return bad("init", "%v", err)
	}
	return c.checkStale()
}

// isStaleOption: init.extra naming oxios-init's stale list, which would
// bypass checkStale.
func isStaleOption(key string) bool {
	opt, ok := contract.OptionName(strings.ToUpper(key))
	if !ok {
		opt = strings.ToLower(key)
	}
	return opt == contract.OptStale
}

// checkExtra validates one init.extra entry: health options through the
// health package, the supervisor's durations, policies and signals through
// theirs. Other options are left to oxios-init, which refuses what it does
// not know at its start.
func checkExtra(hc *health.Config, key, value string) error {
	opt := strings.ToLower(key)
	if o, ok := contract.OptionName(strings.ToUpper(key)); ok {
		opt = o
	}
	opt = strings.ReplaceAll(opt, "_", "-")
	if known, err := hc.Set(opt, value); known {
		return err
	}
	switch opt {
	case contract.OptGrace, "backoff-initial", "backoff-max", "backoff-reset":
		_, err := time.ParseDuration(value)
		return err
	case contract.OptRestart:
		return checkPolicy(value)
	case contract.OptRewrite:
		return checkRewrites(value)
	case "parent-death-signal":
		return checkSignal(value)
	}
	return nil
}
