package hostsvc

import (
	"path/filepath"
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

// FuzzRenderPlist renders plists for arbitrary paths: either the renderer
// refuses the input (not UTF-8, or a control character XML cannot hold) or
// the plist decodes back to exactly the job.
func FuzzRenderPlist(f *testing.F) {
	for _, name := range append(hostileNames, "<tag> & ]]> &amp; <!--", "</string><key>x</key>", "cr\rlf\n") {
		f.Add("/opt/"+name+"/oxios", "/etc/"+name+".toml", "/var/log/"+name)
	}
	f.Fuzz(func(t *testing.T, bin, cfg, logDir string) {
		spec := Spec{Binary: bin, Config: cfg}
		data, err := RenderPlist(spec, logDir)
		if err != nil {
			// Only the documented refusals.
			if spec.validate() == nil && xmlSafe(bin) == nil && xmlSafe(cfg) == nil &&
				xmlSafe(filepath.Join(logDir, "oxiosd.log")) == nil {
				t.Fatalf("refused %q %q %q: %v", bin, cfg, logDir, err)
			}
			return
		}
		var got Job
		if _, err := plist.Unmarshal(data, &got); err != nil {
			t.Fatalf("rendered an undecodable plist for %q %q %q: %v\n%s", bin, cfg, logDir, err, data)
		}
		want, _ := JobFor(spec, logDir)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip\n got %#v\nwant %#v", got, want)
		}
	})
}
