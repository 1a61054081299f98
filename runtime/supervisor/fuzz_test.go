package supervisor_test

import (
	"testing"

	"github.com/a7garden/oxios/runtime/supervisor"
)

// FuzzParseRewrite: any input either parses into signals in range (TO may
// be 0) or is an error; never a panic.
func FuzzParseRewrite(f *testing.F) {
	for _, s := range []string{"15:2", "TERM:INT", "SIGHUP:0", "RTMIN+3:RTMAX-1", ":", "15", "0:1", "99:1", "rtmin+:x", "USR1:usr2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		from, to, err := supervisor.ParseRewrite(s)
		if err != nil {
			return
		}
		if from < 1 || from > supervisor.SigRTMax || to < 0 || to > supervisor.SigRTMax {
			t.Fatalf("ParseRewrite(%q) = %d:%d out of range", s, from, to)
		}
	})
}
