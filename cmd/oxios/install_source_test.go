//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// install --auto-update warns (and still installs) when the config gives
// the timer's `upgrade --if-newer` nowhere to look for a new image: no
// registry in image.ref and no image.archive. Either one is enough.
func TestInstallAutoUpdateWarnsWithoutSource(t *testing.T) {
	for _, c := range []struct {
		image, flag string
		warn        bool
	}{
		{"ref = \"localhost/oxios:latest\"\narchive = \"\"", "--auto-update", true},
		{"ref = \"localhost/oxios:latest\"\narchive = \"/var/lib/oxios/image.tar\"", "--auto-update", false},
		{"ref = \"registry.example.com/oxios:stable\"\narchive = \"\"", "--auto-update", false},
		{"ref = \"localhost/oxios:latest\"\narchive = \"\"", "--now=false", false},
	} {
		path := filepath.Join(t.TempDir(), "oxios.toml")
		if err := os.WriteFile(path, []byte("[image]\n"+c.image+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := run([]string{"install", "--dry-run", c.flag, "--config", path}, &out, &errb)
		warned := strings.Contains(errb.String(), "warning: --auto-update")
		if code != exitOK || warned != c.warn {
			t.Errorf("%s with %q: exit %d, warned %v, want %v\n%s", c.flag, c.image, code, warned, c.warn, errb.String())
			continue
		}
		for _, want := range []string{"image.ref", "image.archive", path} {
			if c.warn && !strings.Contains(errb.String(), want) {
				t.Errorf("the warning does not name %s: %s", want, errb.String())
			}
		}
	}
}
