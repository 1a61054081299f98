package health

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseSpec(t *testing.T) {
	good := []struct {
		in   string
		want Spec
	}{
		{"tcp://127.0.0.1:4200", Spec{Kind: KindTCP, Host: "127.0.0.1", Port: 4200}},
		{"tcp://:80", Spec{Kind: KindTCP, Host: "127.0.0.1", Port: 80}},
		{"tcp://[::1]:8080", Spec{Kind: KindTCP, Host: "::1", Port: 8080}},
		{"tcp://localhost:1", Spec{Kind: KindTCP, Host: "localhost", Port: 1}},
		{"listen://:4200", Spec{Kind: KindListen, Port: 4200}},
		{"listen://0.0.0.0:4200", Spec{Kind: KindListen, Host: "0.0.0.0", Port: 4200}},
		{"listen://[::ffff:127.0.0.1]:9", Spec{Kind: KindListen, Host: "127.0.0.1", Port: 9}},
		{"http://127.0.0.1:4200/health/ready", Spec{Kind: KindHTTP, Host: "127.0.0.1", URL: "http://127.0.0.1:4200/health/ready"}},
		{"http://localhost", Spec{Kind: KindHTTP, Host: "localhost", URL: "http://localhost/"}},
		{"https://[::1]:8443/x?y=1#frag", Spec{Kind: KindHTTPS, Host: "::1", URL: "https://[::1]:8443/x?y=1"}},
		{"exec:true", Spec{Kind: KindExec, Argv: []string{"true"}}},
		{`exec:sh -c 'test -e /tmp/x'`, Spec{Kind: KindExec, Argv: []string{"sh", "-c", "test -e /tmp/x"}}},
		{`exec: a "b \"c\" \\" d\ e`, Spec{Kind: KindExec, Argv: []string{"a", `b "c" \`, "d e"}}},
		{`exec:x ''`, Spec{Kind: KindExec, Argv: []string{"x", ""}}},
		{"notify://", Spec{Kind: KindNotify}},
		{"notify+http://127.0.0.1:4200/health/ready", Spec{Kind: KindNotify, Then: &Spec{Kind: KindHTTP, Host: "127.0.0.1", URL: "http://127.0.0.1:4200/health/ready"}}},
		{"notify+tcp://:4200", Spec{Kind: KindNotify, Then: &Spec{Kind: KindTCP, Host: "127.0.0.1", Port: 4200}}},
		{"notify+listen://:4200", Spec{Kind: KindNotify, Then: &Spec{Kind: KindListen, Port: 4200}}},
	}
	for _, tc := range good {
		got, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSpec(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		again, err := ParseSpec(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q via %q: %#v, %v", tc.in, got.String(), again, err)
		}
	}
	bad := []string{
		"", "tcp://", "tcp://host", "tcp://:0", "tcp://:65536", "tcp://:-1", "tcp://: 80",
		"tcp://h:80/path", "tcp://a b:80", "listen://localhost:80", "listen://[fe80::1%eth0]:80",
		"http://", "http:///path", "http://:80/", "http://h:99999/", "http://u:p@h/", "http://h:/x",
		"http://h/a b", "exec:", "exec:   ", `exec:"unterminated`, "exec:'x", `exec:x\`,
		"udp://h:1", "ftp://h/", "4200", ":4200", "tcp://[::1:80",
		"notify:", "notify://x", "notify+", "notify+notify://", "notify+exec:true", "notify+tcp://h",
	}
	for _, in := range bad {
		if s, err := ParseSpec(in); err == nil {
			t.Errorf("ParseSpec(%q) = %#v, want an error", in, s)
		} else if !errors.Is(err, ErrSpec) {
			t.Errorf("ParseSpec(%q): error %v does not wrap ErrSpec", in, err)
		}
	}
}

// FuzzParseSpec: the parser never panics, accepts only specs a prober can
// be built for, and String() gives back a spec that parses to the same value.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:4200", "listen://:4200", "http://h:1/p?q", "exec:a 'b c'", "notify://", "notify+tcp://:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			return
		}
		built := s
		if s.Kind == KindNotify && s.Then != nil {
			built = *s.Then // notify:// itself is built by a Monitor
		}
		if built.Kind != KindNotify {
			_, err := NewProber(built)
			if built.Kind == KindHTTPS && clientTLS == nil && errors.Is(err, ErrNoHTTPS) {
				err = nil // -tags oxios_nohttps refuses https:// when building, by design
			}
			if err != nil {
				t.Fatalf("ParseSpec(%q) ok but NewProber: %v", in, err)
			}
		}
		out := s.String()
		again, err := ParseSpec(out)
		if err != nil {
			t.Fatalf("ParseSpec(%q) = %#v; its String %q does not parse: %v", in, s, out, err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip %q -> %q: %#v != %#v", in, out, again, s)
		}
	})
}

// TestFuzzCorpusPresent keeps the seed corpus honest: it must exist and be
// in the go-fuzz format that `go test` replays.
func TestFuzzCorpusPresent(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseSpec", "*"))
	if len(files) < 10 {
		t.Fatalf("seed corpus has %d files, want at least 10", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < len("go test fuzz v1") || string(b[:15]) != "go test fuzz v1" {
			t.Errorf("%s: not a go test fuzz v1 file", f)
		}
	}
}

func TestConfigSet(t *testing.T) {
	c := DefaultConfig()
	set := func(name, value string) {
		t.Helper()
		known, err := c.Set(name, value)
		if !known || err != nil {
			t.Fatalf("Set(%q, %q) = %v, %v", name, value, known, err)
		}
	}
	set("readiness", "listen://:4200")
	set("readiness-period", "2s")
	set("readiness-timeout", "500ms")
	set("readiness-initial-delay", "3")
	set("readiness-success-threshold", "2")
	set("liveness", "http://127.0.0.1:4200/health")
	set("liveness-failure-threshold", "5")
	set("startup-period", "1s")
	set("health-listen", "unix:/run/oxios/health.sock")
	set("ready-file", "/run/oxios/ready")
	if c.Readiness.Period.String() != "2s" || c.Readiness.Timeout.String() != "500ms" || c.Readiness.InitialDelay.String() != "3s" ||
		c.Readiness.SuccessThreshold != 2 || c.Liveness.FailureThreshold != 5 || c.Liveness.Period.String() != "10s" ||
		c.Startup.Period.String() != "1s" || c.HealthListen != "unix:/run/oxios/health.sock" || c.ReadyFile != "/run/oxios/ready" {
		t.Fatalf("config after Set: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"grace", "readiness-foo", "restart", "probe", "readinessperiod"} {
		if known, _ := c.Set(name, "1"); known {
			t.Errorf("Set(%q) claims a health option", name)
		}
	}
	for _, kv := range [][2]string{
		{"readiness", "tcp://nohost"}, {"readiness-period", "0"}, {"liveness-timeout", "-1s"},
		{"liveness-failure-threshold", "0"}, {"startup-success-threshold", "x"}, {"health-listen", "nonsense"},
	} {
		if known, err := c.Set(kv[0], kv[1]); !known || err == nil {
			t.Errorf("Set(%q, %q) = %v, %v; want a known option with an error", kv[0], kv[1], known, err)
		}
	}
	// Zero Config (not from DefaultConfig) still gets the kubelet defaults.
	var z Config
	if _, err := z.Set("liveness", "tcp://:1"); err != nil {
		t.Fatal(err)
	}
	if z.Liveness.Period.String() != "10s" || z.Liveness.Timeout.String() != "1s" || z.Liveness.FailureThreshold != 3 || z.Liveness.SuccessThreshold != 1 {
		t.Fatalf("zero config defaults: %+v", z.Liveness)
	}
}

func TestValidateSuccessThreshold(t *testing.T) {
	for _, kind := range []string{"liveness", "startup"} {
		c := DefaultConfig()
		c.Set(kind, "tcp://:1")
		c.Set(kind+"-success-threshold", "2")
		err := c.Validate()
		if err == nil {
			t.Fatalf("%s success threshold 2 accepted", kind)
		}
		if _, err := NewMonitor(c, Hooks{}, nil); err == nil {
			t.Fatalf("NewMonitor accepted %s success threshold 2", kind)
		}
		want := fmt.Sprintf("--%s-success-threshold", kind)
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}
