package task

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/logdriver"
)

func TestTailLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	var b strings.Builder
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	got, err := TailLines(p, 3)
	if err != nil || strings.Join(got, ",") != "line 99997,line 99998,line 99999" {
		t.Fatalf("%q %v", got, err)
	}
}

// tailSince shows only what was written after the mark, and all of a log
// that was rotated since.
func TestTailSince(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte("old 1\nold 2\nold 3\n"), 0o644)
	m := markLog(p)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("new 1\nnew 2\n")
	f.Close()
	if got, err := tailSince(p, m, 30); err != nil || strings.Join(got, ",") != "new 1,new 2" {
		t.Fatalf("after appending: %q %v", got, err)
	}
	if got, _ := tailSince(p, m, 1); strings.Join(got, ",") != "new 2" {
		t.Fatalf("last 1: %q", got)
	}
	os.Rename(p, p+".1")
	os.WriteFile(p, []byte("rotated 1\n"), 0o644)
	if got, err := tailSince(p, m, 30); err != nil || strings.Join(got, ",") != "rotated 1" {
		t.Fatalf("after rotation: %q %v", got, err)
	}
	if got, _ := tailSince(filepath.Join(t.TempDir(), "new.log"), logMark{}, 30); len(got) != 0 {
		t.Fatalf("missing log: %q", got)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
	ch chan struct{}
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *syncBuf) waitFor(t *testing.T, sub string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		ok := strings.Contains(s.b.String(), sub)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.ch:
		case <-deadline:
			t.Fatalf("%q never followed; got %q", sub, s.b.String())
		}
	}
}

// followLog runs WriteLogs -f on p until the returned stop, which fails the
// test if WriteLogs did. A test that fails before stop still ends it.
func followLog(t *testing.T, p string, o LogOptions) (*syncBuf, func()) {
	t.Helper()
	o.Follow = true
	out := &syncBuf{ch: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error)
	go func() { done <- WriteLogs(ctx, p, out, o) }()
	return out, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// logs -f keeps following across a rotation by the log driver.
func TestFollowAcrossRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	w, err := logdriver.Open(logdriver.Options{Path: p, MaxSize: 200, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	io.WriteString(w, "before\n")
	out, stop := followLog(t, p, LogOptions{Lines: 1})
	out.waitFor(t, "before\n")
	for i := 0; i < 10; i++ { // ~250 bytes: exactly one rotation
		fmt.Fprintf(w, "after rotation line %02d\n", i)
	}
	out.waitFor(t, "after rotation line 09\n")
	if _, err := os.Stat(p + ".1"); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	stop()
	if n := strings.Count(out.b.String(), "after rotation line"); n != 10 {
		t.Fatalf("followed %d of 10 lines:\n%s", n, out.b.String())
	}
}

// logs -f reads every file a fast daemon's rotations leave, when more
// than one rotation happens between two looks: none is skipped.
func TestFollowManyRotationsBetweenLooks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	const n = 3000 // ~100 records a file: ~30 rotations, some between two looks
	w, err := logdriver.Open(logdriver.Options{Path: p, MaxSize: 1024, MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	io.WriteString(w, "before\n")
	out, stop := followLog(t, p, LogOptions{})
	out.waitFor(t, "before\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "line %05d\n", i)
	}
	out.waitFor(t, fmt.Sprintf("line %05d\n", n-1))
	stop()
	want := "before\n"
	for i := 0; i < n; i++ {
		want += fmt.Sprintf("line %05d\n", i)
	}
	if got := out.b.String(); got != want {
		t.Fatalf("followed %d of %d lines, or out of order", strings.Count(got, "line "), n)
	}
}

// newerLogs finds the files written after the one being followed, oldest
// first, whatever number of rotations came between.
func TestNewerLogs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	write := func(name, s string) { os.WriteFile(name, []byte(s), 0o644) }
	rotate := func(max int, next string) {
		for i := max - 1; i >= 1; i-- {
			os.Rename(p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1))
		}
		os.Rename(p, p+".1")
		write(p, next)
	}
	contents := func(files []*os.File) string {
		var all []string
		for _, f := range files {
			b, _ := io.ReadAll(f)
			all = append(all, string(b))
			f.Close()
		}
		return strings.Join(all, ",")
	}
	write(p, "a")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := newerLogs(p, f); len(got) != 0 {
		t.Fatalf("not rotated: %d files", len(got))
	}
	rotate(5, "b")
	rotate(5, "c")
	if got := contents(newerLogs(p, f)); got != "b,c" {
		t.Fatalf("two rotations: %q, want b,c", got)
	}
	rotate(2, "d") // .2 (a) is replaced by .1 (b): the followed file is gone
	if got := contents(newerLogs(p, f)); got != "b,c,d" {
		t.Fatalf("followed file rotated out: %q, want b,c,d", got)
	}
}

// at is a record time: T0 plus s seconds.
func at(s int) time.Time { return time.Date(2026, 12, 3, 10, 0, s, 0, time.UTC) }

// rec is one record of the log file.
func rec(s int, stream, tag, msg string) string {
	return at(s).Format(logdriver.TimeLayout) + " " + stream + " " + tag + " " + msg + "\n"
}

// logFixture writes a log and two rotated files: an older-format line,
// stdout and stderr records, and a stdout line in two parts that spans a
// rotation (the driver rotates between records, not between parts).
func logFixture(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p+".2", []byte("an old line without a record\n"+
		rec(1, "stdout", "F", "one")+rec(2, "stderr", "F", "two \xff")), 0o644)
	os.WriteFile(p+".1", []byte(rec(3, "stdout", "F", "three")+rec(4, "stdout", "P", "fo")), 0o644)
	os.WriteFile(p, []byte(rec(5, "stderr", "F", "five")+rec(5, "stdout", "F", "ur")+rec(6, "stdout", "F", "")+rec(7, "stderr", "F", "seven")), 0o644)
	os.WriteFile(p+".x", []byte("not a rotated file\n"), 0o644)
	return p
}

func logs(t *testing.T, p string, o LogOptions) string {
	t.Helper()
	var b strings.Builder
	if err := WriteLogs(context.Background(), p, &b, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Every kept file, oldest first; each line as the daemon wrote it, its
// parts joined, bytes that are not UTF-8 as they came.
func TestLogsPrintLinesAcrossFiles(t *testing.T) {
	p := logFixture(t)
	want := "an old line without a record\none\ntwo \xff\nthree\nfive\nfour\n\nseven\n"
	if got := logs(t, p, LogOptions{}); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLogsSinceUntil(t *testing.T) {
	p := logFixture(t)
	// Lines without a time are left out once a time bound is asked for.
	if got, want := logs(t, p, LogOptions{Since: at(2), Until: at(5)}), "two \xff\nthree\nfive\nfour\n"; got != want {
		t.Errorf("since 2 until 5: got %q, want %q", got, want)
	}
	// A rotated file last written before --since is not read at all.
	old := at(0).Add(-time.Hour)
	os.Chtimes(p+".2", old, old)
	os.WriteFile(p+".2", []byte("unreadable\n"), 0o000)
	os.Chtimes(p+".2", old, old)
	if got, want := logs(t, p, LogOptions{Since: at(6)}), "\nseven\n"; got != want {
		t.Errorf("since 6: got %q, want %q", got, want)
	}
}

func TestLogsTimestamps(t *testing.T) {
	p := logFixture(t)
	got := logs(t, p, LogOptions{Timestamps: true, Lines: 3})
	want := "2026-12-03T10:00:04.000000000Z four\n2026-12-03T10:00:06.000000000Z \n2026-12-03T10:00:07.000000000Z seven\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := logs(t, p, LogOptions{Timestamps: true}); !strings.HasPrefix(got, "an old line without a record\n2026-12-03T10:00:01.000000000Z one\n") {
		t.Errorf("a line without a time is printed as it is: %q", got)
	}
}

func TestLogsStream(t *testing.T) {
	p := logFixture(t)
	if got, want := logs(t, p, LogOptions{Stream: logdriver.Stderr}), "two \xff\nfive\nseven\n"; got != want {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
	if got, want := logs(t, p, LogOptions{Stream: logdriver.Stdout}), "one\nthree\nfour\n\n"; got != want {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
}

// -n counts the lines that match, across rotated files when the current
// one has too few.
func TestLogsLastLines(t *testing.T) {
	p := logFixture(t)
	for _, tc := range []struct {
		o    LogOptions
		want string
	}{
		{LogOptions{Lines: 2}, "\nseven\n"},
		{LogOptions{Lines: 5}, "three\nfive\nfour\n\nseven\n"},
		{LogOptions{Lines: 3, Stream: logdriver.Stdout}, "three\nfour\n\n"},
		{LogOptions{Lines: 100}, "an old line without a record\none\ntwo \xff\nthree\nfive\nfour\n\nseven\n"},
	} {
		if got := logs(t, p, tc.o); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.o, got, tc.want)
		}
	}
}

// -n finds a line's first parts however far back they are: past files
// that hold only the other stream, and past files whose one record is a
// part. A line counts once, in the file where it ends.
func TestLogsLastLinesFindFirstParts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p+".4", []byte(rec(1, "stdout", "F", "k")+rec(2, "stdout", "P", "l1")), 0o644)
	os.WriteFile(p+".3", []byte(rec(3, "stderr", "F", "e")), 0o644)
	os.WriteFile(p+".2", []byte(rec(4, "stdout", "P", "l2")), 0o644)
	os.WriteFile(p+".1", []byte(rec(5, "stdout", "P", "l3")), 0o644)
	os.WriteFile(p, []byte(rec(6, "stdout", "F", "l4")), 0o644)
	for n, want := range map[int]string{1: "l1l2l3l4\n", 2: "e\nl1l2l3l4\n", 3: "k\ne\nl1l2l3l4\n"} {
		if got := logs(t, p, LogOptions{Lines: n}); got != want {
			t.Errorf("-n %d: got %q, want %q", n, got, want)
		}
	}
	if got, want := logs(t, p, LogOptions{Lines: 2, Stream: logdriver.Stdout}), "k\nl1l2l3l4\n"; got != want {
		t.Errorf("-n 2 --stream stdout: got %q, want %q", got, want)
	}
}

// The same with blocks: a block of the other stream (whose line reads
// like a full stdout record) does not end the line, and the line's last
// part is a block's first line.
func TestLogsLastLinesFindFirstPartsBeforeBlocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	fake := strings.TrimSuffix(rec(3, "stdout", "F", "fake"), "\n")
	os.WriteFile(p+".4", []byte(rec(1, "stdout", "F", "k")+rec(2, "stdout", "P", "l1")), 0o644)
	os.WriteFile(p+".3", []byte(block(3, "stderr", "e", fake)), 0o644)
	os.WriteFile(p+".2", []byte(rec(4, "stdout", "P", "l2")), 0o644)
	os.WriteFile(p+".1", []byte(rec(5, "stdout", "P", "l3")), 0o644)
	os.WriteFile(p, []byte(block(6, "stdout", "l4", "m")), 0o644)
	for _, tc := range []struct {
		o    LogOptions
		want string
	}{
		{LogOptions{Lines: 1}, "m\n"},
		{LogOptions{Lines: 2}, "l1l2l3l4\nm\n"},
		{LogOptions{Lines: 3}, fake + "\nl1l2l3l4\nm\n"},
		{LogOptions{Lines: 4, Timestamps: true}, "2026-12-03T10:00:03.000000000Z e\n2026-12-03T10:00:03.000000000Z " + fake +
			"\n2026-12-03T10:00:02.000000000Z l1l2l3l4\n2026-12-03T10:00:06.000000000Z m\n"},
		{LogOptions{Lines: 2, Stream: logdriver.Stdout}, "l1l2l3l4\nm\n"},
		{LogOptions{Lines: 3, Stream: logdriver.Stdout}, "k\nl1l2l3l4\nm\n"},
	} {
		if got := logs(t, p, tc.o); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.o, got, tc.want)
		}
	}
}

// block is a block of the log file: lines of one stream, at T0 plus s.
func block(s int, stream string, lines ...string) string {
	payload := strings.Join(lines, "\n") + "\n"
	return at(s).Format(logdriver.TimeLayout) + " " + stream + " B " + strconv.Itoa(len(payload)) + "\n" + payload
}

// A stdout line whose parts end in a block's first line, and lines in
// blocks that read like records and headers, across rotated files.
func blockFixture(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p+".2", []byte(rec(1, "stdout", "F", "one")+
		block(2, "stderr", "e1", rec(9, "stdout", "F", "fake")[:len(rec(9, "stdout", "F", "fake"))-1], "e3")+
		rec(3, "stdout", "P", "lo")), 0o644)
	os.WriteFile(p+".1", []byte(block(4, "stdout", "ng", "s2")+block(5, "stderr", "2026-12-03T10:00:00.000000000Z stderr B 99", "e5")), 0o644)
	os.WriteFile(p, []byte(rec(6, "stdout", "F", "six")+block(7, "stdout", "", "s8")+rec(8, "stderr", "F", "eight")), 0o644)
	return p
}

const fakeRecord = "2026-12-03T10:00:09.000000000Z stdout F fake"
const fakeHeader = "2026-12-03T10:00:00.000000000Z stderr B 99"

// Blocks read back line for line, with their header's time and stream,
// under every option, across rotated files.
func TestLogsReadBlocks(t *testing.T) {
	p := blockFixture(t)
	all := "one\ne1\n" + fakeRecord + "\ne3\nlong\ns2\n" + fakeHeader + "\ne5\nsix\n\ns8\neight\n"
	for _, tc := range []struct {
		o    LogOptions
		want string
	}{
		{LogOptions{}, all},
		{LogOptions{Since: at(4), Until: at(7)}, "s2\n" + fakeHeader + "\ne5\nsix\n\ns8\n"},
		{LogOptions{Stream: logdriver.Stderr}, "e1\n" + fakeRecord + "\ne3\n" + fakeHeader + "\ne5\neight\n"},
		{LogOptions{Lines: 3}, "\ns8\neight\n"},
		{LogOptions{Lines: 8}, "long\ns2\n" + fakeHeader + "\ne5\nsix\n\ns8\neight\n"},
		{LogOptions{Lines: 2, Stream: logdriver.Stderr}, "e5\neight\n"},
		{LogOptions{Lines: 3, Timestamps: true, Stream: logdriver.Stderr}, "2026-12-03T10:00:05.000000000Z " + fakeHeader +
			"\n2026-12-03T10:00:05.000000000Z e5\n2026-12-03T10:00:08.000000000Z eight\n"},
		{LogOptions{Since: at(2), Until: at(2), Timestamps: true}, "2026-12-03T10:00:02.000000000Z e1\n2026-12-03T10:00:02.000000000Z " +
			fakeRecord + "\n2026-12-03T10:00:02.000000000Z e3\n"},
	} {
		if got := logs(t, p, tc.o); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.o, got, tc.want)
		}
	}
	if got, err := TailLines(p+".1", 2); err != nil || strings.Join(got, "|") != fakeHeader+"|e5" {
		t.Errorf("tail: %q %v", got, err)
	}
}

// A block cut short (its driver killed during the write) shows what
// there is; the next run's first record, which overruns it, ends it: -f
// neither hangs on it nor takes the record for a block's line.
func TestLogsBlockCutShort(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	cut := block(2, "stdout", "a", "b", "never written")
	os.WriteFile(p, []byte(rec(1, "stdout", "F", "before")+cut[:len(cut)-len("never written\n")]+"par"), 0o644)
	if got, want := logs(t, p, LogOptions{}), "before\na\nb\npar\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, err := TailLines(p, 2); err != nil || strings.Join(got, "|") != "b|par" {
		t.Fatalf("tail: %q %v", got, err)
	}
	os.WriteFile(p, []byte(rec(1, "stdout", "F", "before")+cut[:len(cut)-len("never written\n")]), 0o644)
	out, stop := followLog(t, p, LogOptions{Timestamps: true})
	out.waitFor(t, " b\n")
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(rec(3, "stderr", "F", "next run"))
	f.Close()
	out.waitFor(t, "next run\n")
	stop()
	want := "2026-12-03T10:00:01.000000000Z before\n2026-12-03T10:00:02.000000000Z a\n2026-12-03T10:00:02.000000000Z b\n2026-12-03T10:00:03.000000000Z next run\n"
	if got := out.b.String(); got != want {
		t.Fatalf("-f: got %q, want %q", got, want)
	}
}

// -f prints a block's lines as they come, across rotations by the
// driver, each stream's lines in order.
func TestFollowBlocksAcrossRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	w, err := logdriver.Open(logdriver.Options{Path: p, MaxSize: 3 * logdriver.BlockMin, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pr, pw := io.Pipe()
	copied := make(chan error)
	go func() { copied <- logdriver.Copy(w, nil, pr, nil) }()
	io.WriteString(pw, "first\n")
	out, stop := followLog(t, p, LogOptions{})
	out.waitFor(t, "first\n")
	var want strings.Builder
	want.WriteString("first\n")
	// A block a write, a rotation every other one; each burst waits
	// until it is followed, so that rotations come while -f reads
	// (TestFollowManyRotationsBetweenLooks has them come between looks).
	for i := 0; i < 10; i++ {
		var b strings.Builder
		last := ""
		for j := 0; b.Len() < logdriver.BlockMin*5/4; j++ {
			last = fmt.Sprintf("burst %d line %03d %s\n", i, j, strings.Repeat("x", 60))
			b.WriteString(last)
		}
		io.WriteString(pw, b.String())
		want.WriteString(b.String())
		out.waitFor(t, last)
	}
	pw.Close()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	stop()
	if got := out.b.String(); got != want.String() {
		t.Fatalf("followed %d bytes, want %d; first difference at %d", len(got), want.Len(), diffAt(got, want.String()))
	}
	if _, err := os.Stat(p + ".2"); err != nil {
		t.Fatalf("fewer rotations than the test needs: %v", err)
	}
}

func diffAt(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A log written by the driver itself reads back line for line, each of
// its streams in order.
func TestLogsReadWhatTheDriverWrote(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	w, err := logdriver.Open(logdriver.Options{Path: p, MaxSize: 1024, MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&out, "out %d\n", i)
		fmt.Fprintf(&errs, "err %d\n", i)
	}
	long := strings.Repeat("y", logdriver.ReadSize*2+10)
	out.WriteString(long + "\n")
	if err := logdriver.Copy(w, nil, strings.NewReader(out.String()), strings.NewReader(errs.String())); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := logs(t, p, LogOptions{Stream: logdriver.Stdout}); got != out.String() {
		t.Errorf("stdout: %d bytes back, want %d", len(got), out.Len())
	}
	if got := logs(t, p, LogOptions{Stream: logdriver.Stderr}); got != errs.String() {
		t.Errorf("stderr: %q", got)
	}
	if got := logs(t, p, LogOptions{Lines: 1}); got != long+"\n" && got != "err 299\n" {
		t.Errorf("last line: %.40q", got)
	}
}

// -f prints a record once its newline is there, and stops at the first
// line past --until.
func TestFollowWaitsForWholeRecordsAndStopsAtUntil(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte(rec(1, "stdout", "F", "first")), 0o644)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	defer f.Close()
	out := &syncBuf{ch: make(chan struct{}, 1)}
	done := make(chan error)
	go func() {
		done <- WriteLogs(context.Background(), p, out, LogOptions{Follow: true, Until: at(5), Timestamps: true})
	}()
	out.waitFor(t, "first\n")
	half := rec(2, "stdout", "F", "second")
	f.WriteString(half[:20])
	f.WriteString(half[20:] + rec(3, "stdout", "P", "thi"))
	out.waitFor(t, "second\n")
	f.WriteString(rec(3, "stdout", "F", "rd") + rec(6, "stdout", "F", "too late") + rec(7, "stdout", "F", "later"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("-f did not stop after a line past --until")
	}
	want := "2026-12-03T10:00:01.000000000Z first\n2026-12-03T10:00:02.000000000Z second\n2026-12-03T10:00:03.000000000Z third\n"
	if got := out.b.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseLogTime(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                            now.Add(-10 * time.Minute),
		"1h30m":                          now.Add(-90 * time.Minute),
		"2026-12-03T10:00:00Z":           at(0),
		"2026-12-03T11:00:00.5+01:00":    at(0).Add(500 * time.Millisecond),
		"2026-12-03T10:00:07":            at(7),
		"2026-12-03 10:00:07":            at(7),
		"2026-12-03":                     time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
		"2026-12-03T10:00:00.000000001Z": at(0).Add(1),
	} {
		got, err := ParseLogTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "-5m", "10", "2026-13-01", "12:00"} {
		if _, err := ParseLogTime(in, now); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("%q: want an error naming it, got %v", in, err)
		}
	}
}

func FuzzParseLogTime(f *testing.F) {
	for _, s := range []string{"10m", "2026-12-03T10:00:00Z", "2026-12-03 10:00:07", "2026-12-03", "-1h"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseLogTime(s, now)
		if err == nil && got.IsZero() && s != "0001-01-01" {
			if _, derr := time.ParseDuration(s); derr == nil {
				t.Fatalf("%q: a duration gave the zero time", s)
			}
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
			t.Fatalf("%q: the error does not name the value: %v", s, err)
		}
	})
}

// A log the driver cannot open fails the start, naming the path, before
// the daemon runs with no one reading its output.
func TestLogStartFailsNamingTheLogPath(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(e.cfg.LogPath(), 0o755); err != nil { // a directory where the file goes
		t.Fatal(err)
	}
	r := e.connect(t)
	_, err := r.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), e.cfg.LogPath()) {
		t.Fatalf("start with an unopenable log: %v", err)
	}
}

func TestJournalctlArgs(t *testing.T) {
	since := time.Unix(1700000000, 500)
	for _, tc := range []struct {
		o      LogOptions
		socket string
		want   string
	}{
		{LogOptions{}, "", "--no-pager --quiet --all --output cat SYSLOG_IDENTIFIER=oxios CONTAINER_ID=c1"},
		{LogOptions{}, "/run/systemd/journal.apps/socket", "--no-pager --quiet --all --output cat --namespace apps SYSLOG_IDENTIFIER=oxios CONTAINER_ID=c1"},
		{LogOptions{}, "/tmp/elsewhere/socket", "--no-pager --quiet --all --output cat SYSLOG_IDENTIFIER=oxios CONTAINER_ID=c1"},
		{LogOptions{Lines: 5, Follow: true, Timestamps: true, Stream: logdriver.Stderr}, "",
			"--no-pager --quiet --all --output short-iso-precise --lines 5 --follow SYSLOG_IDENTIFIER=oxios CONTAINER_ID=c1 PRIORITY=3"},
		{LogOptions{Since: since, Until: since, Stream: logdriver.Stdout}, "",
			"--no-pager --quiet --all --output cat --since @1700000000 --until @1700000001 SYSLOG_IDENTIFIER=oxios CONTAINER_ID=c1 PRIORITY=6"},
	} {
		if got := strings.Join(JournalctlArgs("c1", tc.socket, tc.o), " "); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.o, got, tc.want)
		}
	}
}

// BenchmarkTailLines: status's tail of a full 10 MiB file (the default
// max_size), read from its start, of records or of blocks.
func BenchmarkTailLines(b *testing.B) {
	line := strings.Repeat("x", 99)
	for _, kind := range []string{"records", "blocks"} {
		p := filepath.Join(b.TempDir(), "x.log")
		var sb strings.Builder
		for sb.Len() < 10<<20 {
			if kind == "records" {
				sb.WriteString(rec(1, "stdout", "F", line))
				continue
			}
			lines := make([]string, 640)
			for i := range lines {
				lines[i] = line
			}
			sb.WriteString(block(1, "stdout", lines...))
		}
		os.WriteFile(p, []byte(sb.String()), 0o644)
		b.Run(kind, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if l, err := TailLines(p, 30); err != nil || len(l) != 30 || l[29] != line {
					b.Fatalf("%q %v", l, err)
				}
			}
		})
	}
}
