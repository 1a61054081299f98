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
