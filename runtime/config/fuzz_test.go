package config

import (
	"os"
	"path/filepath"
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
		_ = c.InitEnv()
	})
}
