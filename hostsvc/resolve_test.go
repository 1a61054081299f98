package hostsvc

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The unit's timeouts follow the config file; a file that does not exist
// yet gives the defaults and says so; a relative --config is made absolute
// (the service manager starts oxios from /).
func TestResolveSpec(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "oxios.toml")
	if err := os.WriteFile(cfg, []byte("[container]\nstop_timeout = \"30s\"\nstart_timeout = \"2m\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, missing, err := ResolveSpec(SpecOptions{Config: cfg, Watchdog: 5 * time.Second})
	if err != nil || missing {
		t.Fatalf("ResolveSpec: missing=%v %v", missing, err)
	}
	exe, _ := os.Executable()
	if s.Binary != filepath.Clean(exe) || s.Config != cfg || s.Grace != 30*time.Second ||
		s.StartTimeout != 3*time.Minute || s.Watchdog != 5*time.Second {
		t.Fatalf("spec %+v", s)
	}

	t.Chdir(dir)
	s, missing, err = ResolveSpec(SpecOptions{Config: "later.toml"})
	if err != nil || !missing {
		t.Fatalf("missing file: missing=%v %v", missing, err)
	}
	if s.Config != filepath.Join(dir, "later.toml") || s.Grace != DefaultGrace || s.StartTimeout != DefaultStartTimeout {
		t.Fatalf("spec for a missing file %+v", s)
	}
}
