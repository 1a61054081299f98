package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSplitCommonAnywhere(t *testing.T) {
	for _, args := range [][]string{
		{"--config", "/f.toml", "status", "--json"},
		{"status", "--config=/f.toml", "--json"},
		{"status", "--json", "-config", "/f.toml"},
	} {
		c, rest, err := splitCommon(args)
		if err != nil || c.config != "/f.toml" || strings.Join(rest, " ") != "status --json" {
			t.Errorf("%q: %+v %q %v", args, c, rest, err)
		}
	}
	if _, _, err := splitCommon([]string{"start", "--address"}); err == nil {
		t.Error("--address without a value accepted")
	}
	if got := withCommon(commonFlags{config: "/f.toml"}, []string{"--user"}); strings.Join(got, " ") != "--config /f.toml --user" {
		t.Errorf("withCommon: %q", got)
	}
}

func TestUsageAndUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: oxios") {
		t.Fatalf("no command: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown: %d %q", code, errb.String())
	}
}

// --config is a common flag; uninstall has no use for it and must not
// refuse it (`oxios --config F uninstall` used to exit 2).
func TestUninstallAcceptsCommonConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	for _, args := range [][]string{
		{"--config", "/f.toml", "uninstall", "--dry-run", "--user"},
		{"daemon", "uninstall", "--config=/f.toml", "--dry-run", "--user"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String(), "not installed") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}
