package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/logdriver"
)

// oxios logs' flags reach the reader: a window in time, one stream, the
// times in front; a value that is not a time is a usage error naming the
// flag.
func TestLogsFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "oxios.toml")
	os.WriteFile(cfg, []byte("[container]\nid = \"t1\"\nlog_dir = \""+dir+"\"\n"), 0o600)
	now := time.Now().UTC()
	rec := func(ago time.Duration, stream, msg string) string {
		return now.Add(-ago).Format(logdriver.TimeLayout) + " " + stream + " F " + msg + "\n"
	}
	os.WriteFile(filepath.Join(dir, "t1.log"), []byte(rec(time.Hour, "stderr", "an hour ago")+
		rec(5*time.Minute, "stdout", "five minutes ago")+rec(4*time.Minute, "stderr", "four minutes ago")+
		rec(time.Second, "stderr", "just now")), 0o644)

	out, errs, code := oxios(t, "logs", "--config", cfg, "--since", "10m", "--until", "2m", "--stream", "stderr", "-t")
	want := now.Add(-4*time.Minute).Format(logdriver.TimeLayout) + " four minutes ago\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, %q (want %q); stderr %q", code, out, want, errs)
	}
	if out, _, _ := oxios(t, "logs", "--config", cfg, "-n", "2"); out != "four minutes ago\njust now\n" {
		t.Errorf("-n 2: %q", out)
	}
	for flag, value := range map[string]string{"--since": "yesterday", "--until": "5", "--stream": "stdin"} {
		if _, errs, code := oxios(t, "logs", "--config", cfg, flag, value); code != 2 || !strings.Contains(errs, flag) || !strings.Contains(errs, value) {
			t.Errorf("%s %s: exit %d, %q: want 2 naming the flag and the value", flag, value, code, errs)
		}
	}
}
