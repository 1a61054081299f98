package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/contract"
)

func parse(t *testing.T, text string) (*Config, error) {
	t.Helper()
	return Parse("/etc/oxios/test.toml", []byte(text))
}

func TestDefaultsNeedNoFile(t *testing.T) {
	t.Setenv(EnvVar, "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	old := systemPath
	systemPath = filepath.Join(t.TempDir(), "absent.toml")
	t.Cleanup(func() { systemPath = old })
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Container.Port != 4200 || c.Containerd.Namespace != "oxios" || c.Image.Ref != "localhost/oxios:latest" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Source != "" {
		t.Fatalf("source = %q, want built-in", c.Source)
	}
}

func TestExplicitMissingFileIsAnError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("err = %v", err)
	}
}

func TestLookupOrder(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "env.toml")
	os.WriteFile(env, []byte("[container]\nport = 5001\n"), 0o644)
	flag := filepath.Join(dir, "flag.toml")
	os.WriteFile(flag, []byte("[container]\nport = 5002\n"), 0o644)
	t.Setenv(EnvVar, env)
	c, err := Load("")
	if err != nil || c.Container.Port != 5001 || c.Source != env {
		t.Fatalf("env: %v %+v", err, c)
	}
	c, err = Load(flag)
	if err != nil || c.Container.Port != 5002 {
		t.Fatalf("flag: %v %+v", err, c)
	}
}

func TestValues(t *testing.T) {
	c, err := parse(t, `
[container]
port = 8080
stop_timeout = "3s"
env = ["A=b"]
user = "1000:1000"
data_dir = "data"
[resources]
memory = "256MiB"
cpus = 1.5
pids = 100
[logs]
max_size = "1M"
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.StopGrace() != 3*time.Second || c.Resources.Memory != 256<<20 || c.Logs.MaxSize != 1<<20 {
		t.Fatalf("%+v", c)
	}
	if c.Container.DataDir != "/etc/oxios/data" {
		t.Fatalf("relative data_dir resolved to %q, want next to the file", c.Container.DataDir)
	}
}

func TestErrorsNameFileLineKey(t *testing.T) {
	cases := []struct{ text, want string }{
		{"[container]\nport = 1\nbogus = 2\n", "/etc/oxios/test.toml:3: key container.bogus: unknown key"},
		{"[container]\n\nport = 70000\n", "/etc/oxios/test.toml:3: key container.port: expected 1-65535"},
		{"[container]\nstop_timeout = \"soon\"\n", "/etc/oxios/test.toml:2"},
		{"[container]\nport = \n", "/etc/oxios/test.toml:2"},
		{"[init]\nrestart = \"sometimes\"\n", "test.toml:2: key init.restart: restart policy \"sometimes\""},
		// init.* are checked by oxios-init's own parsers, before any
		// containerd call: a probe typo, a bad rewrite, a bad duration.
		{"[init]\nreadiness = \"htp://127.0.0.1:1/\"\n", "test.toml:2: key init.readiness: "},
		{"[init]\nrewrite = \"TERM:BOGUS\"\n", "test.toml:2: key init.rewrite: rewrite \"TERM:BOGUS\""},
		{"[init]\nliveness = \"tcp://127.0.0.1\"\n", "test.toml:2: key init.liveness: "},
		{"[init.extra]\nreadiness_period = \"soon\"\n", "key init.extra: readiness_period = \"soon\""},
		{"[init.extra]\nOXIOS_INIT_BACKOFF_MAX = \"x\"\n", "key init.extra: OXIOS_INIT_BACKOFF_MAX"},
		{"[container\n", "/etc/oxios/test.toml:1"},
		{"[resources]\nmemory = \"lots\"\n", "test.toml:2"},
		{"[container]\nport = \"80\"\n", "test.toml:2: key container.port: expected an integer, got a TOML string"},
	}
	for _, tc := range cases {
		_, err := parse(t, tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestInitEnv(t *testing.T) {
	c, err := parse(t, "[container]\nport = 4321\n[init]\nextra = { readiness_period = \"1s\" }\n")
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(c.InitEnv(), "\n")
	for _, want := range []string{
		"OXIOS_INIT_READINESS=http://127.0.0.1:4321/health/ready",
		"OXIOS_INIT_LIVENESS=http://127.0.0.1:4321/health",
		"OXIOS_INIT_REWRITE=15:2",
		"OXIOS_INIT_READINESS_PERIOD=1s",
		"OXIOS_INIT_READY_FILE=" + contract.ReadyFile,
	} {
		if !strings.Contains(env, want) {
			t.Errorf("missing %s in\n%s", want, env)
		}
	}
}

func TestExampleFileParses(t *testing.T) {
	p := filepath.Join("..", "..", "deploy", "oxios.toml")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(p, data); err != nil {
		t.Fatal(err)
	}
}

func TestParseUser(t *testing.T) {
	for _, tc := range []struct {
		in       string
		uid, gid int
		ok       bool
	}{
		{"65532", 65532, 65532, true},
		{"1000:2000", 1000, 2000, true},
		{"0:0", 0, 0, true},
		{"nobody", -1, -1, false},
		{"1000:staff", -1, -1, false},
		{"-1", -1, -1, false},
		{"4294967296", -1, -1, false},
		{"", -1, -1, false},
	} {
		uid, gid, ok := ParseUser(tc.in)
		if uid != tc.uid || gid != tc.gid || ok != tc.ok {
			t.Errorf("ParseUser(%q) = %d, %d, %v; want %d, %d, %v", tc.in, uid, gid, ok, tc.uid, tc.gid, tc.ok)
		}
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"oxios": true, "a": true, "A0_.-x": true, "0abc": true, strings.Repeat("a", 76): true,
		"": false, "_a": false, ".a": false, "-a": false, "a b": false, "a/b": false, "é": false,
		strings.Repeat("a", 77): false, "a:b": false,
	} {
		if got := validID(s); got != want {
			t.Errorf("validID(%q) = %v, want %v", s, got, want)
		}
	}
}
