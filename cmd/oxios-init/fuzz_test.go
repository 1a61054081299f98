package main

import (
	"strings"
	"testing"
)

// FuzzParse: arbitrary arguments and one environment variable never panic,
// and a parsed command is never empty.
func FuzzParse(f *testing.F) {
	f.Add("-sgvv\x00-e\x003\x00--\x00true", "OXIOS_INIT_GRACE=1s")
	f.Add("--rewrite=15:2\x00ls\x00-l", "OXIOS_INIT_STALE=/a:/b")
	f.Add("-e\x00", "TINI_VERBOSITY=x")
	f.Add("--readiness\x00tcp://x:1\x00cmd", "OXIOS_INIT_READINESS_PERIOD=2s")
	f.Fuzz(func(t *testing.T, args, env string) {
		o, err := parse("oxios-init", strings.Split(args, "\x00"), []string{env})
		if err != nil || o.help || o.version {
			return
		}
		if len(o.sup.Command) == 0 {
			t.Fatalf("parse(%q, %q): no error and no command", args, env)
		}
	})
}
