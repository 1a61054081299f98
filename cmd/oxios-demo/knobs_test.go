package main

import (
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) (func(string) (string, bool), []string) {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }, kv
}

func TestParseKnobsAll(t *testing.T) {
	lookup, environ := env(
		"OXIOS_DEMO_LISTEN=0.0.0.0:8080", "OXIOS_DEMO_LISTEN_DELAY=1s", "OXIOS_DEMO_READY_DELAY=2s",
		"OXIOS_DEMO_EXIT_AFTER=3s", "OXIOS_DEMO_EXIT_CODE=4", "OXIOS_DEMO_SIGTERM=ignore",
		"OXIOS_DEMO_STOP_DELAY=5s", "OXIOS_DEMO_ORPHANS=6", "OXIOS_DEMO_HANG_AFTER=0s",
		"OXIOS_DEMO_UNREADY_AFTER=8s", "OXIOS_DEMO_DATA_DIR=/d", "OXIOS_DEMO_SIGTREM=x", "OXIOS_DEMO_SD_NOTIFY=1")
	k, err := parseKnobs(lookup, environ)
	if err != nil {
		t.Fatal(err)
	}
	want := knobs{Listen: "0.0.0.0:8080", ListenDelay: time.Second, ReadyDelay: 2 * time.Second,
		ExitAfter: 3 * time.Second, HasExitAfter: true, ExitCode: 4, HasExitCode: true, Sigterm: sigtermIgnore,
		StopDelay: 5 * time.Second, Orphans: 6, HangAfter: 0, HasHangAfter: true,
		UnreadyAfter: 8 * time.Second, HasUnreadyAfter: true, DataDir: "/d", SdNotify: true, Unknown: []string{"OXIOS_DEMO_SIGTREM"}}
	if !reflect.DeepEqual(k, want) {
		t.Fatalf("got %+v\nwant %+v", k, want)
	}
}

func TestParseKnobsDefaults(t *testing.T) {
	lookup, environ := env("OXIOS_DEMO_READY_DELAY=") // empty means unset
	k, err := parseKnobs(lookup, environ)
	if err != nil {
		t.Fatal(err)
	}
	if k.Sigterm != sigtermExit || k.HasExitAfter || k.HasHangAfter || k.ReadyDelay != 0 {
		t.Fatalf("defaults: %+v", k)
	}
}

func TestParseKnobsErrorsNameTheVariable(t *testing.T) {
	for _, kv := range []string{
		"OXIOS_DEMO_LISTEN_DELAY=5", "OXIOS_DEMO_READY_DELAY=-1s", "OXIOS_DEMO_EXIT_AFTER=x",
		"OXIOS_DEMO_EXIT_CODE=-1", "OXIOS_DEMO_EXIT_CODE=256", "OXIOS_DEMO_EXIT_CODE=one",
		"OXIOS_DEMO_SIGTERM=kill", "OXIOS_DEMO_STOP_DELAY=1d", "OXIOS_DEMO_ORPHANS=100000",
		"OXIOS_DEMO_HANG_AFTER=later", "OXIOS_DEMO_UNREADY_AFTER=1y", "OXIOS_DEMO_LISTEN=host",
		"OXIOS_DEMO_LISTEN=:99999", "OXIOS_DEMO_SD_NOTIFY=yes",
	} {
		lookup, environ := env(kv)
		_, err := parseKnobs(lookup, environ)
		var ke *knobError
		name, _, _ := strings.Cut(kv, "=")
		if !errors.As(err, &ke) || ke.Var != name || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want a knobError naming %s", kv, err, name)
		}
	}
}

func TestListenPrecedence(t *testing.T) {
	cfg := t.TempDir() + "/c.toml"
	writeFile(t, cfg, "[gateway]\nport = 4301\n")
	cases := []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "127.0.0.1:4200"},
		{[]string{"--config", cfg}, nil, "127.0.0.1:4301"},
		{[]string{"--config", cfg}, []string{"OXIOS_DEMO_LISTEN=127.0.0.1:4302"}, "127.0.0.1:4302"},
		{[]string{"--config", cfg, "--listen", "[::1]:4303"}, []string{"OXIOS_DEMO_LISTEN=127.0.0.1:4302"}, "[::1]:4303"},
	}
	for _, c := range cases {
		lookup, environ := env(c.env...)
		o, err := parseOptions(c.args, lookup, environ, io.Discard)
		if err != nil || o.Listen != c.want {
			t.Errorf("%v %v: listen %q err %v, want %q", c.args, c.env, o.Listen, err, c.want)
		}
	}
}

func TestParseOptionsErrors(t *testing.T) {
	lookup, environ := env()
	for _, args := range [][]string{
		{"serve"}, {"--listen", "nope"}, {"--bogus"}, {"--config", "/nonexistent/oxios.toml"},
	} {
		_, err := parseOptions(args, lookup, environ, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
}

func TestGatewayConfig(t *testing.T) {
	for _, c := range []struct{ in, want, errSub string }{
		{"", "127.0.0.1:4200", ""},
		{"[gateway]\nhost = \"0.0.0.0\"\n", "0.0.0.0:4200", ""},
		{"[gateway]\nhost = \"::1\"\nport = 1\n[agent]\nx = [1,2]\n", "[::1]:1", ""},
		{"[gateway]\nport = 70000\n", "", "f.toml: [gateway] port = 70000"},
		{"[gateway]\nport = \"4200\"\n", "", "f.toml:2:"},
		{"[gateway\n", "", "f.toml:1:"},
	} {
		got, err := parseGatewayConfig("f.toml", []byte(c.in))
		if c.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.errSub) {
				t.Errorf("%q: err %v, want it to contain %q", c.in, err, c.errSub)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, got, err, c.want)
		}
	}
}

func FuzzParseGatewayConfig(f *testing.F) {
	f.Add([]byte("[gateway]\nhost = \"127.0.0.1\"\nport = 4200\n"))
	f.Add([]byte("[gateway]\nport = -1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		addr, err := parseGatewayConfig("f.toml", data)
		if err == nil {
			if cerr := checkListenAddr(addr); cerr != nil {
				t.Fatalf("accepted %q, which is not a listen address: %v", addr, cerr)
			}
		} else if !strings.Contains(err.Error(), "f.toml") {
			t.Fatalf("error %q does not name the file", err)
		}
	})
}

func FuzzParseKnobs(f *testing.F) {
	for _, s := range []string{"1s", "-1s", "exit", "300", "a:b", "0"} {
		f.Add(envReadyDelay, s)
		f.Add(envSigterm, s)
		f.Add(envExitCode, s)
		f.Add(envListen, s)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		if !knownEnv[name] {
			return
		}
		lookup, environ := env(name + "=" + value)
		k, err := parseKnobs(lookup, environ)
		if err != nil {
			var ke *knobError
			if !errors.As(err, &ke) || ke.Var != name {
				t.Fatalf("%s=%q: error %v does not name the variable", name, value, err)
			}
			return
		}
		if k.ExitCode < 0 || k.ExitCode > 255 || k.Orphans < 0 || k.Orphans > maxOrphans ||
			k.ReadyDelay < 0 || k.StopDelay < 0 || k.ListenDelay < 0 {
			t.Fatalf("%s=%q accepted out of range: %+v", name, value, k)
		}
	})
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
