package logdriver

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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

// records parses the log files in order into records, a block's lines
// as full records, failing on a line that is not one.
func records(t *testing.T, paths ...string) []Record {
	t.Helper()
	rs, _ := fileRecords(t, paths...)
	return rs
}

// fileRecords is records, and the number of blocks they came in.
func fileRecords(t *testing.T, paths ...string) ([]Record, int) {
	t.Helper()
	var out []Record
	blocks := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("%s does not end with a newline", p)
		}
		var d Decoder
		for _, line := range bytes.SplitAfter(b, []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			r, ok := d.Record(line[:len(line)-1])
			if !ok {
				blocks++
				continue
			}
			if r.Stream == "" {
				t.Fatalf("%s: not a record: %.80q", p, line)
			}
			out = append(out, r)
		}
		if d.left != 0 {
			t.Fatalf("%s ends inside a block (%d bytes short)", p, d.left)
		}
	}
	return out, blocks
}

var reRecord = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [PF] `)

func TestAppendsAcrossRunsAndRotates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	o := Options{Path: p, MaxSize: 150, MaxFiles: 2}
	for run := 0; run < 2; run++ {
		w, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		Copy(w, nil, strings.NewReader(fmt.Sprintf("run %d line\n", run)), nil)
		w.Close()
	}
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !reRecord.MatchString(lines[0]) || !strings.HasSuffix(lines[0], " stdout F run 0 line") ||
		!strings.HasSuffix(lines[1], " stdout F run 1 line") {
		t.Fatalf("second run did not append a record: %q", b)
	}
	w, _ := Open(o)
	for i := 0; i < 30; i++ {
		fmt.Fprintf(w, "line %02d of rotation\n", i)
	}
	w.Close()
	for _, f := range []string{p, p + ".1", p + ".2"} {
		st, err := os.Stat(f)
		if err != nil || st.Size() > 150 {
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

// failing fails its first n writes, like a full disk; with short set, a
// failing write first takes half of what it is given.
type failing struct {
	n     int
	short bool
	out   bytes.Buffer
}

func (f *failing) Write(p []byte) (int, error) {
	if f.n > 0 {
		f.n--
		n := 0
		if f.short {
			n, _ = f.out.Write(p[:len(p)/2])
		}
		return n, fmt.Errorf("write x.log: no space left on device")
	}
	return f.out.Write(p)
}

// linesOneByOne feeds lines to Copy one read at a time (an io.Pipe hands
// each Write to one Read), so each line is a batch of its own.
func linesOneByOne(lines ...string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for _, l := range lines {
			io.WriteString(pw, l)
		}
		pw.Close()
	}()
	return pr
}

func messages(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		r := ParseRecord([]byte(strings.TrimSuffix(line, "\n")))
		if r.Stream == "" {
			t.Fatalf("not a record: %q in %q", line, b)
		}
		out = append(out, r.Stream+" "+string(r.Msg))
	}
	return out
}

// A failing write never stops the reading (the daemon would block, then
// die of SIGPIPE); the loss is reported once and marked when writing
// resumes.
func TestWriteErrorsDropLinesAndKeepReading(t *testing.T) {
	f := &failing{n: 3}
	var errs strings.Builder
	if err := Copy(f, &errs, linesOneByOne("a\n", "b\n", "c\n", "d\n", "e\n"), nil); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(messages(t, f.out.Bytes()), "|")
	want := "stderr oxios: 3 log lines dropped (write x.log: no space left on device)|stdout d|stdout e"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if strings.Count(errs.String(), "dropping log lines") != 1 || !strings.Contains(errs.String(), "writing again after 3") {
		t.Fatalf("reports: %q", errs.String())
	}
}

// A write cut short inside a record (the disk filled up during it): the
// rest of the record is written first once writing works again, so the
// file holds whole records, and the records after the cut are counted.
func TestShortWriteFinishesTheRecord(t *testing.T) {
	f := &failing{n: 1, short: true}
	if err := Copy(f, nil, linesOneByOne("first line\nlost\n", "second\n"), nil); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(messages(t, f.out.Bytes()), "|")
	want := "stdout first line|stderr oxios: 1 log lines dropped (write x.log: no space left on device)|stdout second"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Blocks on a failing file: a block that cannot be written counts all
// its lines as dropped, and a block cut short is finished first, whole.
func TestWriteErrorsWithBlocks(t *testing.T) {
	burst := func(name string) string {
		var b strings.Builder
		for i := 0; b.Len() < BlockMin; i++ {
			fmt.Fprintf(&b, "%s %03d %s\n", name, i, strings.Repeat("b", 90))
		}
		return b.String()
	}
	lost, cut := burst("lost"), burst("cut")
	for _, tc := range []struct {
		name string
		f    *failing
		in   []string
		want []string
	}{
		{"dropped", &failing{n: 2}, []string{lost, lost, "d\n"},
			[]string{fmt.Sprintf("stderr oxios: %d log lines dropped (write x.log: no space left on device)", 2*strings.Count(lost, "\n")), "stdout d"}},
		{"cut short", &failing{n: 1, short: true}, []string{cut, "after\n"},
			append(strings.Split("stdout "+strings.ReplaceAll(strings.TrimSuffix(cut, "\n"), "\n", "\nstdout "), "\n"), "stdout after")},
	} {
		if err := Copy(tc.f, nil, linesOneByOne(tc.in...), nil); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "c.log")
		os.WriteFile(p, tc.f.out.Bytes(), 0o644)
		var got []string
		for _, r := range records(t, p) {
			got = append(got, r.Stream+" "+string(r.Msg))
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: got %.200q, want %.200q", tc.name, got, tc.want)
		}
	}
}

// The report file (status's log_error) holds the error while writes fail
// and is gone once they work again.
func TestReportFileFollowsTheError(t *testing.T) {
	report := filepath.Join(t.TempDir(), "log-error")
	f := &failing{n: 1 << 30}
	if err := Copy(f, reporter{report}, strings.NewReader("a\nb\n"), nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(report); err != nil || !strings.Contains(string(b), "no space left on device") {
		t.Fatalf("while failing: report %q, %v", b, err)
	}
	f.n = 1
	if err := Copy(f, reporter{report}, linesOneByOne("c\n", "d\n"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(report); !os.IsNotExist(err) {
		t.Fatalf("report file still there after writing resumed: %v", err)
	}
}

// Two streams written at full speed, in writes that end inside lines,
// come out as whole lines: every record is one line of one stream, in
// the stream's order.
func TestLogTwoStreamsNeverInterleave(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	w, err := Open(Options{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	outR, errR := feed(t, n, "out", 7), feed(t, n, "err", 13)
	if err := Copy(w, nil, outR, errR); err != nil {
		t.Fatal(err)
	}
	w.Close()
	next := map[string]int{}
	for _, r := range records(t, p) {
		want := line(r.Stream[3:], next[r.Stream])
		if r.Partial || string(r.Msg)+"\n" != want {
			t.Fatalf("%s record %d: got %q (partial %v), want %q", r.Stream, next[r.Stream], r.Msg, r.Partial, want)
		}
		next[r.Stream]++
	}
	if next[Stdout] != n || next[Stderr] != n {
		t.Fatalf("read back %v, want %d of each", next, n)
	}
}

// line i of a stream: numbered, of varying length.
func line(name string, i int) string {
	return fmt.Sprintf("%s %07d %s\n", name, i, strings.Repeat("x", i%97))
}

// feed writes n lines of a stream into a real pipe in writes of odd
// sizes (every one of them ends inside a line), as fast as it can.
func feed(t *testing.T, n int, name string, chunk int) io.Reader {
	return feedWrites(t, n, name, chunk, 4093)
}

// feedWrites is feed with writes of up to most bytes.
func feedWrites(t *testing.T, n int, name string, chunk, most int) io.Reader {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	go func() {
		defer w.Close()
		var b bytes.Buffer
		for i := 0; i < n; i++ {
			b.WriteString(line(name, i))
		}
		data := b.Bytes()
		for k := 1; len(data) > 0; k++ {
			m := min(len(data), chunk*k%most+1)
			w.Write(data[:m])
			data = data[m:]
		}
	}()
	return r
}

// A line longer than the read buffer is split into parts (P, then F for
// the last), never dropped; bytes that are not UTF-8 come out as written.
func TestLogLongLineSplitsIntoParts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	w, err := Open(Options{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte("0123456789abcdef"), ReadSize*5/2/16)
	long = append(long, 0xff, 0xfe, 'e', 'n', 'd')
	in := append(append([]byte("before\n"), long...), "\nafter\nno newline at the end"...)
	if err := Copy(w, nil, bytes.NewReader(in), nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rs := records(t, p)
	var tags []string
	var joined []byte
	for _, r := range rs {
		tags = append(tags, map[bool]string{true: "P", false: "F"}[r.Partial])
		joined = append(joined, r.Msg...)
		if !r.Partial {
			joined = append(joined, '\n')
		}
		if len(r.Msg) > ReadSize {
			t.Errorf("a record of %d bytes, more than the read buffer", len(r.Msg))
		}
	}
	if got := strings.Join(tags, ""); got != "FPPFFF" {
		t.Errorf("tags %s, want FPPFFF", got)
	}
	if !bytes.Equal(joined, append(in, '\n')) {
		t.Errorf("the parts do not join to the input (%d bytes, want %d)", len(joined), len(in)+1)
	}
}

// N numbered lines at full speed across many rotations: the files, oldest
// first, hold exactly the N lines in order, and none is over max_size.
func TestLogNothingLostAcrossRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	// max_size above a full pipe's block: each file keeps to it.
	const maxSize, maxFiles = 128 << 10, 1000
	w, err := Open(Options{Path: p, MaxSize: maxSize, MaxFiles: maxFiles})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100000
	if err := Copy(w, nil, feedWrites(t, n, "out", 4096, 64<<10), nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var files []string
	for i := maxFiles; i >= 1; i-- {
		f := fmt.Sprintf("%s.%d", p, i)
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		}
	}
	files = append(files, p)
	if len(files) < 5 {
		t.Fatalf("only %d files: too few rotations to test", len(files))
	}
	for _, f := range files {
		if st, _ := os.Stat(f); st.Size() > maxSize {
			t.Errorf("%s: %d bytes, over max_size", f, st.Size())
		}
	}
	rs, blocks := fileRecords(t, files...) // fails on a file that ends inside a block
	if len(rs) != n || blocks == 0 {
		t.Fatalf("read back %d lines in %d blocks from %d files, want %d", len(rs), blocks, len(files), n)
	}
	for i, r := range rs {
		if string(r.Msg)+"\n" != line("out", i) {
			t.Fatalf("line %d: %q", i, r.Msg)
		}
	}
}

// A driver that cannot open its log fails before it is ready (so the
// shim fails the start) and names the path.
func TestLogDriverThatCannotOpenFailsNamingThePath(t *testing.T) {
	if os.Getenv("OXIOS_LOGDRIVER_TEST_MAIN") == "1" {
		if err := Main(os.Args[len(os.Args)-4:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	path := filepath.Join(dir, "file", "c.log") // under a regular file
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogDriverThatCannotOpenFailsNamingThePath$", "--", Mode, "1", "file", path)
	cmd.Env = append(os.Environ(), "OXIOS_LOGDRIVER_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil || !strings.Contains(stderr.String(), path) {
		t.Fatalf("driver on %s: %v, stderr %q", path, err, stderr.String())
	}
}

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		line   string
		stream string
		msg    string
		part   bool
	}{
		{"2026-12-03T15:04:05.000000001Z stdout F hello world", Stdout, "hello world", false},
		{"2026-12-03T15:04:05.5+02:00 stderr P part", Stderr, "part", true},
		{"2026-12-03T15:04:05Z stdout F ", Stdout, "", false},
		{"2026-12-03T15:04:05Z stdout F", Stdout, "", false},
		{"time=\"2026-12-03T15:04:05Z\" level=info msg=old", "", "time=\"2026-12-03T15:04:05Z\" level=info msg=old", false},
		{"2026-12-03T15:04:05Z stdin F x", "", "2026-12-03T15:04:05Z stdin F x", false},
		{"2026-12-03T15:04:05Z stdout X x", "", "2026-12-03T15:04:05Z stdout X x", false},
		{"", "", "", false},
	} {
		r := ParseRecord([]byte(tc.line))
		if r.Stream != tc.stream || string(r.Msg) != tc.msg || r.Partial != tc.part || (r.Stream != "") == r.Time.IsZero() {
			t.Errorf("%q: got %+v", tc.line, r)
		}
	}
}

// A header gives the payload's length; a B that is not one (no digits,
// zero, too many, anything after) is a line in no format.
func TestParseBlockHeader(t *testing.T) {
	for line, want := range map[string]int{
		"2026-12-03T15:04:05.000000001Z stdout B 12":        12,
		"2026-12-03T15:04:05Z stderr B 999999999":           999999999,
		"2026-12-03T15:04:05Z stderr B 1234567890":          0,
		"2026-12-03T15:04:05Z stdout B 0":                   0,
		"2026-12-03T15:04:05Z stdout B 12x":                 0,
		"2026-12-03T15:04:05Z stdout B 12 ":                 0,
		"2026-12-03T15:04:05Z stdout B ":                    0,
		"2026-12-03T15:04:05Z stdout B":                     0,
		"2026-12-03T15:04:05Z stdout F B 12":                0,
		"time=2026-12-03T15:04:05Z stdout B 12 is no block": 0,
	} {
		r := ParseRecord([]byte(line))
		if r.Block != want || want > 0 && (r.Stream == "" || len(r.Msg) != 0) || want == 0 && r.Stream == "" && string(r.Msg) != line {
			t.Errorf("%q: got %+v, want a block of %d", line, r, want)
		}
	}
}

// Whatever the lines, the decoder never fails, and a line's message is
// the line, or its end.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte("2026-12-03T15:04:05Z stdout B 9\nab\ncdef\nx\n2026-12-03T15:04:05Z stderr F y\n"))
	f.Fuzz(func(t *testing.T, file []byte) {
		var d Decoder
		for _, line := range bytes.Split(file, []byte{'\n'}) {
			r, ok := d.Record(line)
			if ok && !bytes.HasSuffix(line, r.Msg) || d.left < 0 {
				t.Fatalf("%q: %+v, %d left", line, r, d.left)
			}
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("2026-12-03T15:04:05.000000001Z stdout F hello"))
	f.Add([]byte("old line"))
	f.Add([]byte("2026-12-03T15:04:05.000000001Z stderr B 4096"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r := ParseRecord(line)
		if r.Stream == "" && !bytes.Equal(r.Msg, line) {
			t.Fatalf("a line not in the format is not kept whole: %q -> %q", line, r.Msg)
		}
		if !bytes.HasSuffix(line, r.Msg) {
			t.Fatalf("message %q is not the end of %q", r.Msg, line)
		}
	})
}

// The stamper's hand-made fraction is the layout's, across seconds,
// years and zones.
func TestStamperMatchesTheLayout(t *testing.T) {
	var s stamper
	base := time.Date(2027, 1, 1, 0, 59, 58, 0, time.FixedZone("x", 3600)) // 2026-12-31T23:59:58Z
	for i := 0; i < 5000; i++ {
		tm := base.Add(time.Duration(i) * 999_937 * time.Nanosecond)
		if got, want := string(s.append(nil, tm)), string(appendStamp(nil, tm)); got != want {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}

var reHeader = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) B (\d+)$`)

// rawBlock is a block as it lies in the file.
type rawBlock struct {
	time    time.Time
	stream  string
	payload []byte
}

// rawBlocks splits a file of blocks only into them, by the letter of the
// format: a header line, then exactly LEN bytes.
func rawBlocks(t *testing.T, b []byte) []rawBlock {
	t.Helper()
	var out []rawBlock
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		m := reHeader.FindSubmatch(b[:max(i, 0)])
		if m == nil {
			t.Fatalf("not a block header: %.80q", b)
		}
		n, _ := strconv.Atoi(string(m[3]))
		tm, _ := time.Parse(time.RFC3339Nano, string(m[1]))
		b = b[i+1:]
		if n > len(b) || b[n-1] != '\n' {
			t.Fatalf("a block of %d bytes does not end with a line: %.80q", n, b)
		}
		out = append(out, rawBlock{tm, string(m[2]), b[:n]})
		b = b[n:]
	}
	return out
}

// A burst (a read of more than BlockMin bytes) is written as blocks: each
// payload is the daemon's lines as written, all of them, in order, of
// the header's stream, stamped when they were read; the reader gives back
// the same lines with that time and stream.
func TestLogBurstIsWrittenAsBlocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	w, err := Open(Options{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	for i := 0; i < 20000; i++ {
		out.WriteString(line("out", i))
		errs.WriteString(line("err", i))
	}
	before := time.Now()
	if err := Copy(w, nil, bytes.NewReader(out.Bytes()), bytes.NewReader(errs.Bytes())); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	w.Close()
	b, _ := os.ReadFile(p)
	got := map[string][]byte{}
	blocks := rawBlocks(t, b)
	for _, bl := range blocks {
		got[bl.stream] = append(got[bl.stream], bl.payload...)
		if bl.time.Before(before) || bl.time.After(after) {
			t.Errorf("block time %v not between %v and %v", bl.time, before, after)
		}
	}
	if !bytes.Equal(got[Stdout], out.Bytes()) || !bytes.Equal(got[Stderr], errs.Bytes()) {
		t.Fatalf("the payloads are not the lines as written (%d and %d bytes, want %d and %d)",
			len(got[Stdout]), len(got[Stderr]), out.Len(), errs.Len())
	}
	rs := records(t, p)
	next := map[string]int{}
	k, left := -1, 0 // the block a record is read from, and its bytes not read yet
	for _, r := range rs {
		if left == 0 {
			k++
			left = len(blocks[k].payload)
		}
		left -= len(r.Msg) + 1
		if want := line(r.Stream[3:], next[r.Stream]); r.Partial || string(r.Msg)+"\n" != want ||
			!r.Time.Equal(blocks[k].time) || r.Stream != blocks[k].stream {
			t.Fatalf("%s line %d: %q at %v, want %q at %v in %s", r.Stream, next[r.Stream], r.Msg, r.Time, want, blocks[k].time, blocks[k].stream)
		}
		next[r.Stream]++
	}
	if next[Stdout] != 20000 || next[Stderr] != 20000 {
		t.Fatalf("read back %v", next)
	}
}

// A block's lines are the daemon's whatever they hold: lines that read
// like records or headers (one of a length that would swallow the rest
// of the file) come back as plain lines of the block's stream.
func TestLogBlockLinesThatLookLikeRecords(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	w, err := Open(Options{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	fake := []string{
		"2026-12-03T15:04:05.000000000Z stderr F not stderr",
		"2026-12-03T15:04:05.000000000Z stdout P not a part",
		"2026-12-03T15:04:05.000000000Z stdout B 7",
		"2026-12-03T15:04:05Z stderr B 999999999",
		"",
	}
	var in []string
	for len(strings.Join(in, "\n")) < 2*BlockMin {
		in = append(in, fake...)
	}
	data := strings.Join(in, "\n") + "\n"
	if err := Copy(w, nil, strings.NewReader(data), strings.NewReader("after\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rs, blocks := fileRecords(t, p)
	if blocks != 1 {
		t.Fatalf("%d blocks, want 1", blocks)
	}
	var got []string
	for _, r := range rs {
		if r.Stream == Stdout {
			got = append(got, string(r.Msg))
		} else if string(r.Msg) != "after" {
			t.Errorf("a stderr line %q", r.Msg)
		}
	}
	if strings.Join(got, "\n")+"\n" != data {
		t.Fatalf("read back %d lines, want %d", len(got), len(in))
	}
}

// A quiet daemon's lines (reads under BlockMin) are CRI records, one a
// line, as other tools read them; a read of BlockMin whole lines is a
// block.
func TestLogQuietDaemonWritesRecords(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	w, err := Open(Options{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	short := strings.Repeat(strings.Repeat("q", 99)+"\n", BlockMin/100) // just under BlockMin
	burst := short + strings.Repeat("b", BlockMin-len(short)-1) + "\n"
	if err := Copy(w, nil, linesOneByOne("listening\n", "ready\n", short, burst), nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, _ := os.ReadFile(p)
	lines := strings.Split(string(b), "\n")
	n := 2 + strings.Count(short, "\n")
	for i, l := range lines[:n] {
		if !reRecord.MatchString(l) || l[reRecord.FindStringIndex(l)[1]-2] != Full {
			t.Fatalf("line %d is not a full record: %.80q", i, l)
		}
	}
	if !reHeader.MatchString(lines[n]) || !strings.HasSuffix(lines[n], fmt.Sprintf(" B %d", BlockMin)) {
		t.Fatalf("the burst is not a block of %d bytes: %.80q", BlockMin, lines[n])
	}
	if got := strings.Join(lines[n+1:], "\n"); got != burst {
		t.Fatalf("the burst's lines are not as written: %.80q", got)
	}
}
