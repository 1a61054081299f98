package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any input either parses into a valid config or returns an
// error naming the file; it never panics.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.toml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			if c != nil {
				t.Fatal("config and error")
			}
			return
		}
		if c.Container.Port < 1 || c.Container.Port > 65535 {
			t.Fatalf("accepted port %d", c.Container.Port)
		}
		mount := c.Container.DataMount
		for _, p := range c.Init.StaleFiles {
			p = c.Expand(p)
			if strings.ContainsAny(p, "\n\x00") || strings.Contains(p+"/", "/../") || !strings.HasPrefix(p, strings.TrimSuffix(mount, "/")+"/") {
				t.Fatalf("accepted stale file %q with data_mount %q", p, mount)
			}
		}
		_ = c.InitEnv()
	})
}

// FuzzSizeDuration: the value types users type: no panic, no negative
// result, and an accepted size is what it says (plain integers round-trip).
func FuzzSizeDuration(f *testing.F) {
	for _, s := range []string{"512MiB", "1G", "64k", "10", "0", "1.5G", "-1", "10s", "1m30s", "-3s", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var sz Size
		if err := sz.UnmarshalText([]byte(s)); err == nil {
			if sz < 0 {
				t.Fatalf("size %q = %d", s, sz)
			}
			b, _ := sz.MarshalText()
			var back Size
			if err := back.UnmarshalText(b); err != nil || back != sz {
				t.Fatalf("size %q -> %s -> %d, %v", s, b, back, err)
			}
		}
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err == nil && d < 0 {
			t.Fatalf("duration %q = %v", s, d.D())
		}
	})
}
