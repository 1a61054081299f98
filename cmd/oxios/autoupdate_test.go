package main

import "testing"

// --auto-update takes its calendar only after "=": the next argument is
// never swallowed, and true/false switch it as a boolean would.
func TestAutoUpdateFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		rest int
	}{
		{[]string{"--auto-update"}, "daily", 0},
		{[]string{"--auto-update=true"}, "daily", 0},
		{[]string{"--auto-update=false"}, "", 0},
		{[]string{"--auto-update=Mon *-*-* 03:30"}, "Mon *-*-* 03:30", 0},
		{[]string{"--auto-update", "weekly"}, "daily", 1},
		{[]string{"--now"}, "", 0},
	} {
		f := &installFlags{}
		fs := newFlagSet("oxios install")
		f.define(fs, true)
		rest, err := fs.parse(c.args)
		if err != nil || f.autoUpdate != c.want || len(rest) != c.rest {
			t.Errorf("%q: calendar %q, rest %q, %v; want %q and %d left", c.args, f.autoUpdate, rest, err, c.want, c.rest)
		}
	}
}
