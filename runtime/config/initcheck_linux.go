package config

import (
	"strings"

	"github.com/a7garden/oxios/runtime/supervisor"
)

// The supervisor's own parsers. Signal names are read with Linux's
// numbers, the container's, which is why other hosts skip them.

func checkPolicy(s string) error {
	_, err := supervisor.ParsePolicy(s)
	return err
}

// checkRewrites parses OXIOS_INIT_REWRITE's form: FROM:TO pairs, commas
// between them.
func checkRewrites(list string) error {
	for _, r := range strings.Split(list, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if _, _, err := supervisor.ParseRewrite(r); err != nil {
			return err
		}
	}
	return nil
}

func checkSignal(s string) error {
	_, err := supervisor.ParseSignal(s, false)
	return err
}
