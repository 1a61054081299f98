package logdriver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestArgsRoundTripInAnyOrder(t *testing.T) {
	o := Options{Path: "/var/log/oxios/x.log", MaxSize: 1024, MaxFiles: 3}
	var args []string
	for k, v := range o.Args() { // map order: random, like the shim's
		args = append(args, k, v)
	}
	if !IsInvocation(args) {
		t.Fatalf("not recognized: %q", args)
	}
	got, err := Parse(args)
	if err != nil || got != o {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestAppendsAcrossRunsAndRotates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	o := Options{Path: p, MaxSize: 100, MaxFiles: 2}
	for run := 0; run < 2; run++ {
		w, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		Copy(w, strings.NewReader(fmt.Sprintf("run %d line\n", run)))
		w.Close()
	}
	b, _ := os.ReadFile(p)
	if string(b) != "run 0 line\nrun 1 line\n" {
		t.Fatalf("second run did not append: %q", b)
	}
	w, _ := Open(o)
	for i := 0; i < 30; i++ {
		fmt.Fprintf(w, "line %02d of rotation\n", i)
	}
	w.Close()
	for _, f := range []string{p, p + ".1", p + ".2"} {
		st, err := os.Stat(f)
		if err != nil || st.Size() > 100 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	if _, err := os.Stat(p + ".3"); !os.IsNotExist(err) {
		t.Fatalf("kept more than max_files: %v", err)
	}
	last, _ := os.ReadFile(p)
	if !strings.HasSuffix(string(last), "line 29 of rotation\n") {
		t.Fatalf("newest lines not in %s: %q", p, last)
	}
}
