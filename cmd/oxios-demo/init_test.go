package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// TestImageDefaultsUnderOxiosInit runs the demo under the real oxios-init
// with the ENV defaults the Containerfile gives it (port moved off 4200):
// a SIGTERM to oxios-init (docker stop, kubelet) must reach the demo as
// SIGINT and end in a graceful drain, exit 0, and the readiness probe must
// pass. This checks the Containerfile's choices, not oxios-init itself.
func TestImageDefaultsUnderOxiosInit(t *testing.T) {
	initBin := testenv.Bin(t, "oxios-init")
	env := containerfileEnv(t, filepath.Join(testenv.RepoRoot(t), "Containerfile"))
	for _, name := range []string{"OXIOS_INIT_REWRITE", "OXIOS_INIT_READINESS", "OXIOS_INIT_LIVENESS"} {
		if _, ok := env[name]; !ok {
			t.Fatalf("Containerfile sets no %s", name)
		}
	}
	port := fmt.Sprint(testenv.FreePort(t))
	var vars []string
	for k, v := range env {
		if strings.HasPrefix(k, "OXIOS_") {
			vars = append(vars, k+"="+strings.ReplaceAll(v, ":4200", ":"+port))
		}
	}
	// Not PID 1 here: a subreaper, so that the warning is not the point.
	vars = append(vars, "OXIOS_INIT_SUBREAPER=1", "OXIOS_INIT_VERBOSITY=2", "OXIOS_DEMO_LISTEN=127.0.0.1:"+port)

	p := startDemoWith(t, initBin, vars, "--", demoBin)
	p.ready()
	p.waitLog(`readiness changed.*ready=true`) // oxios-init's probe, from the image's default
	p.signal(syscall.SIGTERM)
	p.waitLog(`msg="stop signal received".*signal=SIGINT`)
	p.waitLog(`msg="drained, exiting"`)
	if c := p.exitCode(); c != 0 {
		t.Fatalf("oxios-init exit code %d after SIGTERM, want 0 (the demo drained)", c)
	}
}

// containerfileEnv returns the NAME=VALUE pairs of the Containerfile's ENV
// instructions (the simple unquoted form this Containerfile uses).
func containerfileEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.ReplaceAll(string(data), "\\\n", " ")
	env := map[string]string{}
	for _, line := range strings.Split(joined, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "ENV") {
			continue
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("%s: ENV %q is not NAME=VALUE", path, kv)
			}
			env[k] = v
		}
	}
	return env
}
