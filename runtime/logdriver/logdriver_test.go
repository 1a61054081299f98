package logdriver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestArgsRoundTripInAnyOrder(t *testing.T) {
	o := Options{Path: "/var/log/oxios/x.log", MaxSize: 1024, MaxFiles: 3, Report: "/run/oxios/x/log-error"}
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
		Copy(w, nil, strings.NewReader(fmt.Sprintf("run %d line\n", run)))
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

// failing fails its first n writes, like a full disk.
type failing struct {
	n   int
	out strings.Builder
}

func (f *failing) Write(p []byte) (int, error) {
	if f.n > 0 {
		f.n--
		return 0, fmt.Errorf("write x.log: no space left on device")
	}
	return f.out.Write(p)
}

// A failing write never stops the reading (the daemon would die of
// SIGPIPE); the loss is reported once and marked when writing resumes.
func TestWriteErrorsDropLinesAndKeepReading(t *testing.T) {
	f := &failing{n: 3}
	var errs strings.Builder
	in := "a\nb\nc\nd\ne\n"
	if err := Copy(f, &errs, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := "oxios: 3 log lines dropped (write x.log: no space left on device)\nd\ne\n"
	if f.out.String() != want {
		t.Fatalf("got %q, want %q", f.out.String(), want)
	}
	if strings.Count(errs.String(), "dropping log lines") != 1 || !strings.Contains(errs.String(), "writing again after 3") {
		t.Fatalf("reports: %q", errs.String())
	}
}

// The report file (status's log_error) holds the error while writes fail
// and is gone once they work again.
func TestReportFileFollowsTheError(t *testing.T) {
	report := filepath.Join(t.TempDir(), "log-error")
	f := &failing{n: 1 << 30}
	if err := Copy(f, reporter{report}, strings.NewReader("a\nb\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(report); err != nil || !strings.Contains(string(b), "no space left on device") {
		t.Fatalf("while failing: report %q, %v", b, err)
	}
	f.n = 1
	if err := Copy(f, reporter{report}, strings.NewReader("c\nd\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(report); !os.IsNotExist(err) {
		t.Fatalf("report file still there after writing resumed: %v", err)
	}
}
