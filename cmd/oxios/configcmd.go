package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/a7garden/oxios/runtime/config"
)

func configCommand() *command {
	return &command{
		name: "config", summary: "check a config file, or show the effective configuration",
		help: `check validates a config file (--config FILE, else the lookup order):
exit 0, or 2 with FILE:LINE: key KEY: what is wrong.
show prints every key's effective value as TOML, each with where it came
from (default, file FILE:LINE, environment, flag), as 'git config
--show-origin' does.`,
		sub: []*command{
			{name: "check", summary: "validate the config file (exit 0, or 2 with file:line:key)",
				help: "Validate the config file that --config names, else the one the lookup order finds.",
				setup: func(fs *flagSet) runFunc {
					return noArgs("config check", cmdConfigCheck)
				}},
			{name: "show", summary: "print the effective configuration with each value's origin",
				help: "Print every key's effective value (TOML) with its origin as a comment.",
				setup: func(fs *flagSet) runFunc {
					return noArgs("config show", cmdConfigShow)
				}},
		},
	}
}

func cmdConfigCheck(e *env) int {
	path, _ := config.Locate(e.common.config)
	l, err := loadConfig(e.common)
	if err != nil {
		report(e.stderr, err)
		return configFailCode(err, exitFail)
	}
	if l.cfg.Source == "" {
		fmt.Fprintf(e.stdout, "no config file (%s does not exist): the built-in defaults apply\n", orNone(path))
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%s: ok (%d keys set)\n", l.cfg.Source, len(l.cfg.FileKeys))
	return exitOK
}

func orNone(p string) string {
	if p == "" {
		return "no path in the lookup order"
	}
	return p
}

func cmdConfigShow(e *env) int {
	l, err := loadConfig(e.common)
	if err != nil {
		report(e.stderr, err)
		return configFailCode(err, exitFail)
	}
	writeConfig(e.stdout, l)
	return exitOK
}

// writeConfig prints the configuration as TOML, each key with its origin.
func writeConfig(w io.Writer, l *loaded) {
	if l.cfg.Source == "" {
		fmt.Fprintln(w, "# no config file: built-in defaults, then the environment and flags")
	} else {
		fmt.Fprintf(w, "# config file: %s\n", l.cfg.Source)
	}
	section := ""
	for _, en := range l.cfg.Entries() {
		sec, key, _ := strings.Cut(en.Key, ".")
		if sec != section {
			fmt.Fprintf(w, "\n[%s]\n", sec)
			section = sec
		}
		fmt.Fprintf(w, "%-40s # %s\n", key+" = "+en.Value, originOf(l, en.Key))
	}
}

func originOf(l *loaded, key string) string {
	if o, ok := l.origins[key]; ok {
		return o
	}
	if key == "containerd.address" {
		return fmt.Sprintf("default; unset, so oxios uses it when it answers, else the private %s of make run", config.PrivateAddress)
	}
	return "default"
}
