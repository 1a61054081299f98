package main

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/supervisor"
)

func TestParseTiniFlags(t *testing.T) {
	o, err := parse("oxios-init", []string{"-sgvvw", "-e", "3", "-e143", "-p", "SIGKILL", "ls", "-l"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.subreaper || !o.sup.KillGroup || o.verbosity != 3 || !o.sup.WarnOnReap || !o.sup.Remap[3] || !o.sup.Remap[143] || o.pdeathsig != syscall.SIGKILL {
		t.Errorf("parsed %+v", o)
	}
	if strings.Join(o.sup.Command, " ") != "ls -l" {
		t.Errorf("command %q, want ls -l (arguments after CMD belong to it)", o.sup.Command)
	}
	o, _ = parse("oxios-init", []string{"--", "-s"}, nil)
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
	o, err := parse("oxios-init", []string{"--grace=5s", "-r", "USR1:USR2", "--stale", "/data/c.lock", "--restart", "always", "--", "daemon"}, env)
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
		_, err := parse("oxios-init", c.args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse(%q, %q) = %v; want an error naming %q", c.args, c.env, err, c.want)
		}
	}
}

// Health options go to health.Config.Set by name, flags and environment.
func TestParseHealthOptions(t *testing.T) {
	o, err := parse("oxios-init", []string{"--readiness", "tcp://127.0.0.1:1", "--liveness-period=3s", "--", "true"},
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
	if code := run("oxios-init", []string{"-h"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: oxios-init") {
		t.Errorf("-h: %d %q", code, out.String())
	}
	out.Reset()
	if code := run("oxios-init", []string{"--version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "oxios-init version") {
		t.Errorf("--version: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run("oxios-init", []string{"probe", "sideways"}, nil, &out, &errb); code != 1 {
		t.Errorf("probe sideways: exit %d", code)
	}
}

// Invoked as dumb-init, dumb-init's defaults: the child's own session,
// signals to its group, TSTP/TTIN/TTOU as STOP (unless -r says otherwise)
// and oxios-init suspending itself after them; -c and DUMB_INIT_SETSID=0
// turn the session off and keep the child in oxios-init's group.
func TestParseDumbInitPersonality(t *testing.T) {
	stop := map[syscall.Signal]syscall.Signal{syscall.SIGTSTP: syscall.SIGSTOP, syscall.SIGTTIN: syscall.SIGSTOP, syscall.SIGTTOU: syscall.SIGSTOP}
	for _, c := range []struct {
		name      string
		args, env []string
		want      supervisor.Session
		group     bool
		rewrite   map[syscall.Signal]syscall.Signal
	}{
		{"/usr/bin/dumb-init", []string{"sh"}, nil, supervisor.Session{Setsid: true, SuspendSelf: true}, true, stop},
		{"dumb-init", []string{"-c", "sh"}, nil, supervisor.Session{SharedGroup: true, SuspendSelf: true}, false, map[syscall.Signal]syscall.Signal{}},
		{"dumb-init", []string{"--single-child", "--", "sh"}, nil, supervisor.Session{SharedGroup: true, SuspendSelf: true}, false, map[syscall.Signal]syscall.Signal{}},
		{"dumb-init", []string{"sh"}, []string{"DUMB_INIT_SETSID=0"}, supervisor.Session{SharedGroup: true, SuspendSelf: true}, false, map[syscall.Signal]syscall.Signal{}},
		{"dumb-init", []string{"sh"}, []string{"DUMB_INIT_SETSID=yes"}, supervisor.Session{Setsid: true, SuspendSelf: true}, true, stop},
		{"dumb-init", []string{"-c", "-g", "sh"}, nil, supervisor.Session{SuspendSelf: true}, true, map[syscall.Signal]syscall.Signal{}},
		{"dumb-init", []string{"-r", "20:20", "-r", "21:0", "sh"}, nil, supervisor.Session{Setsid: true, SuspendSelf: true}, true,
			map[syscall.Signal]syscall.Signal{syscall.SIGTSTP: syscall.SIGTSTP, syscall.SIGTTIN: 0, syscall.SIGTTOU: syscall.SIGSTOP}},
		{"tini", []string{"sh"}, nil, supervisor.Session{}, false, map[syscall.Signal]syscall.Signal{}},
		{"oxios-init", []string{"sh"}, []string{"DUMB_INIT_SETSID=1"}, supervisor.Session{Setsid: true}, true, stop},
		{"oxios-init", []string{"--setsid", "sh"}, nil, supervisor.Session{Setsid: true}, true, stop},
		{"oxios-init", []string{"sh"}, []string{"OXIOS_INIT_SETSID=1"}, supervisor.Session{Setsid: true}, true, stop},
		{"oxios-init", []string{"-c", "sh"}, []string{"DUMB_INIT_SETSID=1"}, supervisor.Session{}, false, map[syscall.Signal]syscall.Signal{}},
	} {
		o, err := parse(c.name, c.args, c.env)
		if err != nil {
			t.Errorf("%s %q %q: %v", c.name, c.args, c.env, err)
			continue
		}
		if o.sup.Session != c.want || o.sup.KillGroup != c.group || !reflect.DeepEqual(o.sup.Rewrite, c.rewrite) {
			t.Errorf("%s %q %q: session %+v group %v rewrite %v; want %+v %v %v", c.name, c.args, c.env,
				o.sup.Session, o.sup.KillGroup, o.sup.Rewrite, c.want, c.group, c.rewrite)
		}
	}
}

// -v is one level more under tini's name and debugging at once under
// dumb-init's, as is DUMB_INIT_DEBUG=1 (exactly "1", as dumb-init reads it).
func TestParseVerbosityByName(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  []string
		want int
	}{
		{"tini", []string{"-v", "sh"}, nil, 2},
		{"tini", []string{"-vv", "sh"}, nil, 3},
		{"dumb-init", []string{"-v", "sh"}, nil, 3},
		{"dumb-init", []string{"--verbose", "sh"}, nil, 3},
		{"dumb-init", []string{"sh"}, []string{"DUMB_INIT_DEBUG=1"}, 3},
		{"tini", []string{"sh"}, []string{"DUMB_INIT_DEBUG=1"}, 3},
		{"dumb-init", []string{"sh"}, []string{"DUMB_INIT_DEBUG=true"}, 1},
	} {
		o, err := parse(c.name, c.args, c.env)
		if err != nil || o.verbosity != c.want {
			t.Errorf("%s %q %q: verbosity %v (%v), want %d", c.name, c.args, c.env, o.verbosity, err, c.want)
		}
	}
}

// -V and --version print the version and exit 0 under every name.
func TestVersionUnderEveryName(t *testing.T) {
	for _, name := range []string{"oxios-init", "tini", "/usr/local/bin/dumb-init"} {
		for _, flag := range []string{"-V", "--version"} {
			var out, errb strings.Builder
			if code := run(name, []string{flag}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "oxios-init version") {
				t.Errorf("%s %s: exit %d, stdout %q", name, flag, code, out.String())
			}
		}
	}
}
