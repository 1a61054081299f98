package main

import (
	"strings"
	"testing"

	"github.com/a7garden/oxios/runtime/upgrade"
)

// STATUS= names a version as history does: the ref, then the digest cut
// to its algorithm and 12 hex digits; a version without a digest is its
// ref alone (not "ref@-").
func TestVersionName(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct {
		v    upgrade.Version
		want string
	}{
		{upgrade.Version{Ref: "localhost/oxios:latest", Digest: d}, "localhost/oxios:latest@sha256:abababababab"},
		{upgrade.Version{Ref: "localhost/oxios:latest"}, "localhost/oxios:latest"},
	} {
		if got := versionName(c.v); got != c.want {
			t.Errorf("versionName(%+v) = %q, want %q", c.v, got, c.want)
		}
	}
}
