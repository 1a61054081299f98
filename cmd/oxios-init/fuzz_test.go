package main

import (
	"strings"
	"testing"
)

// FuzzParse: arbitrary arguments and one environment variable, under
// tini's name or dumb-init's, never panic, and a parsed command is never
// empty.
func FuzzParse(f *testing.F) {
	f.Add("oxios-init", "-sgvv\x00-e\x003\x00--\x00true", "OXIOS_INIT_GRACE=1s")
	f.Add("tini", "--rewrite=15:2\x00ls\x00-l", "OXIOS_INIT_STALE=/a:/b")
	f.Add("oxios-init", "-e\x00", "TINI_VERBOSITY=x")
	f.Add("oxios-init", "--readiness\x00tcp://x:1\x00cmd", "OXIOS_INIT_READINESS_PERIOD=2s")
	f.Add("/usr/bin/dumb-init", "-cv\x00-r\x0020:0\x00sh", "DUMB_INIT_SETSID=0")
	f.Add("dumb-init", "--single-child\x00--setsid\x00-V", "DUMB_INIT_DEBUG=1")
	f.Fuzz(func(t *testing.T, name, args, env string) {
		o, err := parse(name, strings.Split(args, "\x00"), []string{env})
		if err != nil || o.help || o.version {
			return
		}
		if len(o.sup.Command) == 0 {
			t.Fatalf("parse(%q, %q, %q): no error and no command", name, args, env)
		}
		if o.sup.Session.SharedGroup && (o.sup.Session.Setsid || o.sup.KillGroup) {
			t.Fatalf("parse(%q, %q, %q): the child both in oxios-init's group and in its own: %+v", name, args, env, o.sup.Session)
		}
	})
}
