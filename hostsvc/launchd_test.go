package hostsvc

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"howett.net/plist"
)

func TestPlistRoundTrip(t *testing.T) {
	for _, name := range append(hostileNames, "cr\rlf\n", "<tag> & ]]> &amp; <!--", "</string><key>x</key>") {
		spec := Spec{Binary: "/opt/" + name + "/oxios", Config: "/etc/" + name + ".toml", User: true, Grace: 45 * time.Second}
		data, err := RenderPlist(spec, "/Users/x/"+name)
		if strings.ContainsAny(name, "\x01\x1b\x7f\xff") {
			// XML 1.0 cannot carry most control characters, nor bytes that
			// are not UTF-8: refuse them instead of writing a plist launchd
			// would reject.
			if err == nil {
				t.Errorf("%q: rendered a plist XML cannot hold", name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		var got Job
		format, err := plist.Unmarshal(data, &got)
		if err != nil {
			t.Fatalf("%q: decode: %v\n%s", name, err, data)
		}
		if format != plist.XMLFormat {
			t.Errorf("%q: format %d, want XML", name, format)
		}
		want, _ := JobFor(spec, "/Users/x/"+name)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: round trip\n got %#v\nwant %#v", name, got, want)
		}
		// And untyped, as launchd sees it: the keys it reads, nothing else.
		var raw map[string]any
		if _, err := plist.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		args, _ := raw["ProgramArguments"].([]any)
		if len(args) != 5 || args[0] != spec.Binary || args[4] != spec.Config || raw["Label"] != Label {
			t.Errorf("%q: decoded %v", name, raw)
		}
		if raw["ExitTimeOut"].(uint64) <= uint64(spec.Grace/time.Second) {
			t.Errorf("ExitTimeOut %v is not longer than the grace %v", raw["ExitTimeOut"], spec.Grace)
		}
	}
}
