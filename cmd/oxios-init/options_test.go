package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/supervisor"
)

func TestParseTiniFlags(t *testing.T) {
	o, err := parse([]string{"-sgvvw", "-e", "3", "-e143", "-p", "SIGKILL", "ls", "-l"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.subreaper || !o.sup.KillGroup || o.verbosity != 3 || !o.sup.WarnOnReap || !o.sup.Remap[3] || !o.sup.Remap[143] || o.pdeathsig != syscall.SIGKILL {
		t.Errorf("parsed %+v", o)
	}
	if strings.Join(o.sup.Command, " ") != "ls -l" {
		t.Errorf("command %q, want ls -l (arguments after CMD belong to it)", o.sup.Command)
	}
	o, _ = parse([]string{"--", "-s"}, nil)
	if strings.Join(o.sup.Command, " ") != "-s" || o.subreaper {
		t.Errorf("after --: %q", o.sup.Command)
	}
}

func TestParseOxiosFlagsAndEnv(t *testing.T) {
	env := []string{
		"TINI_SUBREAPER=", "TINI_KILL_PROCESS_GROUP=1", "TINI_VERBOSITY=2",
		"OXIOS_INIT_GRACE=3s", "OXIOS_INIT_REWRITE=15:2,HUP:0", "OXIOS_INIT_RESTART=on-failure",
		"OXIOS_INIT_BACKOFF_INITIAL=2s", "OXIOS_INIT_BACKOFF_MAX=20s", "OXIOS_INIT_BACKOFF_RESET=1m",
		"OXIOS_INIT_LOCK=/data/lk", "OXIOS_INIT_STALE=/data/a.pid\n/data/b:c.sock\n", "OXIOS_INIT_LOG_FORMAT=json",
		"OTHER=1",
	}
	o, err := parse([]string{"--grace=5s", "-r", "USR1:USR2", "--stale", "/data/c.lock", "--restart", "always", "--", "daemon"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if !o.subreaper || !o.sup.KillGroup || o.verbosity != 2 {
		t.Errorf("tini env: %+v", o)
	}
	if o.sup.Grace != 5*time.Second {
		t.Errorf("grace %s: the flag wins over the environment", o.sup.Grace)
	}
	if o.sup.Rewrite[15] != 2 || o.sup.Rewrite[1] != 0 || o.sup.Rewrite[10] != 12 {
		t.Errorf("rewrite %v", o.sup.Rewrite)
	}
	if _, ok := o.sup.Rewrite[1]; !ok {
		t.Error("HUP:0 (drop) missing")
	}
	if o.sup.Restart != supervisor.Always || o.sup.BackoffInitial != 2*time.Second || o.sup.BackoffMax != 20*time.Second || o.sup.BackoffReset != time.Minute {
		t.Errorf("restart %+v", o.sup)
	}
	if o.lock != "/data/lk" || strings.Join(o.stale, " ") != "/data/a.pid /data/b:c.sock /data/c.lock" || o.logFormat != "json" {
		t.Errorf("lock %q stale %q format %q", o.lock, o.stale, o.logFormat)
	}
}

func TestParseErrorsNameTheOption(t *testing.T) {
	for _, c := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"--bogus", "x", "--", "true"}, nil, "bogus"},
		{[]string{"-x", "true"}, nil, "-x"},
		{[]string{"true"}, []string{"OXIOS_INIT_BOGUS=1"}, "OXIOS_INIT_BOGUS"},
		{[]string{"--grace", "soon", "true"}, nil, "--grace"},
		{[]string{"-r", "15", "true"}, nil, "-r"},
		{[]string{"--restart", "sometimes", "true"}, nil, "sometimes"},
		{[]string{"--readiness-bogus", "1", "true"}, nil, "readiness-bogus"},
		{[]string{"-s"}, nil, "no command"},
		{[]string{"--grace"}, nil, "--grace needs a value"},
		{[]string{"true"}, []string{"OXIOS_INIT_GRACE=x"}, "OXIOS_INIT_GRACE"},
	} {
		_, err := parse(c.args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse(%q, %q) = %v; want an error naming %q", c.args, c.env, err, c.want)
		}
	}
}

// Health options go to health.Config.Set by name, flags and environment.
func TestParseHealthOptions(t *testing.T) {
	o, err := parse([]string{"--readiness", "tcp://127.0.0.1:1", "--liveness-period=3s", "--", "true"},
		[]string{"OXIOS_INIT_READINESS_PERIOD=2s", "OXIOS_INIT_HEALTH_LISTEN=127.0.0.1:0"})
	if err != nil {
		t.Fatalf("health options refused: %v", err)
	}
	if o.health.Readiness.Spec != "tcp://127.0.0.1:1" || o.health.Readiness.Period != 2*time.Second || o.health.Liveness.Period != 3*time.Second || o.health.HealthListen != "127.0.0.1:0" {
		t.Errorf("health config %+v", o.health)
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"-h"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: oxios-init") {
		t.Errorf("-h: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "oxios-init version") {
		t.Errorf("--version: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"probe", "sideways"}, nil, &out, &errb); code != 1 {
		t.Errorf("probe sideways: exit %d", code)
	}
}
