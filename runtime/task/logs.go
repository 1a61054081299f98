package task

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/a7garden/oxios/runtime/logdriver"
)

// TailLines returns the last n lines of path.
func TailLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return lastLines(f, n, 0)
}

// logMark is where the log stood when a start began: a failed start shows
// only what was written after it, not an earlier run's last words.
type logMark struct {
	ino  uint64
	size int64
}

// markLog notes the log's current end (the zero mark when it has none).
func markLog(path string) logMark {
	fi, err := os.Stat(path)
	if err != nil {
		return logMark{}
	}
	m := logMark{size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m.ino = st.Ino
	}
	return m
}

// tailSince is TailLines limited to the lines written after m. A log that
// was rotated since (another inode, or shorter) is all new.
func tailSince(path string, m logMark, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	floor := int64(0)
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Ino == m.ino && fi.Size() >= m.size {
			floor = m.size
		}
	}
	return lastLines(f, n, floor)
}

// lastLines reads forward from offset floor and keeps the last n lines,
// as `oxios logs -n` prints them: a block's payload may hold lines that
// read like records, so the file cannot be read backwards from an
// arbitrary offset (files are at most logs.max_size).
func lastLines(f *os.File, n int, floor int64) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	if _, err := f.Seek(floor, io.SeekStart); err != nil {
		return nil, err
	}
	p := &printer{w: io.Discard, ringMax: n}
	lr := newLineReader(f)
	if err := p.lines(lr); err != nil {
		return nil, err
	}
	p.end(lr.rest())
	out := make([]string, len(p.ring))
	for i := range p.ring {
		l := p.ring[(p.next+i)%len(p.ring)]
		out[i] = string(l[:len(l)-1]) // without the newline printing added
	}
	return out, nil
}

// LogOptions select what WriteLogs prints.
type LogOptions struct {
	Lines      int       // the last N lines; <= 0 = all
	Follow     bool      // keep printing new lines, across rotation, until ctx ends
	Since      time.Time // only lines written at or after it (zero: no bound)
	Until      time.Time // only lines written at or before it (zero: no bound)
	Timestamps bool      // each line starts with the time it was written
	Stream     string    // only this stream (logdriver.Stdout or Stderr); "" = both
}

// WriteLogs writes the daemon's lines from the log at path and the files
// rotated out of it (PATH.N .. PATH.1), oldest first, to w. It needs no
// containerd: the log is a host file.
func WriteLogs(ctx context.Context, path string, w io.Writer, o LogOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("log %s: %w", path, err)
	}
	defer func() { f.Close() }()
	files := append(rotatedLogs(path, o.Since, f), path)
	bw := bufio.NewWriterSize(w, 64<<10)
	p := &printer{w: bw, o: o}
	if o.Lines > 0 {
		var start int
		if start, err = lastFiles(files, f, o); err != nil {
			return err
		}
		files = files[start:]
		p.ringMax = o.Lines
	}
	for _, name := range files[:len(files)-1] {
		if err := p.file(name); err != nil {
			return err
		}
	}
	lr := newLineReader(f)
	if err := p.lines(lr); err != nil {
		return err
	}
	if !o.Follow || p.pastUntil {
		p.end(lr.rest())
	}
	p.flushRing()
	if err := bw.Flush(); err != nil || !o.Follow || p.pastUntil {
		return err
	}
	return follow(ctx, path, f, lr, p, bw)
}

// rotatedLogs lists PATH.N .. PATH.1, oldest first, leaving out those
// last written before since (all their lines are older) and cur, the
// open current file, should it have been rotated since it was opened.
func rotatedLogs(path string, since time.Time, cur *os.File) []string {
	curInfo, _ := cur.Stat()
	type rotated struct {
		name string
		n    int
	}
	var rs []rotated
	matches, _ := filepath.Glob(globEscape(path) + ".*")
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+"."))
		if err != nil || n < 1 {
			continue
		}
		fi, err := os.Stat(m)
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().Before(since) || curInfo != nil && os.SameFile(fi, curInfo) {
			continue
		}
		rs = append(rs, rotated{m, n})
	}
	slices.SortFunc(rs, func(a, b rotated) int { return b.n - a.n })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.name
	}
	return out
}

// globEscape quotes the glob metacharacters of a path.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lastFiles returns the index of the file to start from for the last
// o.Lines matching lines: the newest file from which on at least that
// many lines end, or an older one that holds the first parts of one of
// them; cur is the open current file, rewound after.
func lastFiles(files []string, cur *os.File, o LogOptions) (int, error) {
	o.Follow = false
	n := 0
	seen := map[string]bool{}
	for i := len(files) - 1; i >= 0; i-- {
		// A line counts in the file that holds its last part: parts
		// still open at the end of a rotated file end in a later one.
		count := &printer{w: io.Discard, o: o, seen: seen}
		var err error
		if i == len(files)-1 {
			lr := newLineReader(cur)
			err = count.lines(lr)
			count.end(lr.rest())
			if _, serr := cur.Seek(0, io.SeekStart); err == nil {
				err = serr
			}
		} else {
			err = count.file(files[i])
		}
		if err != nil {
			return 0, err
		}
		if n += count.n; n >= o.Lines {
			return firstParts(files, i, seen), nil
		}
	}
	return 0, nil
}

// firstParts returns the index of the oldest file that holds a part of a
// line going on in files[i:]. The format has no mark for a line's first
// part, so for each stream printed from files[i:] it looks back for the
// stream's last record before them: a full one (F) ends the line before,
// a part (P) means the file is needed, and further back too unless the
// part's line begins in that file.
func firstParts(files []string, i int, streams map[string]bool) int {
	open := maps.Clone(streams)
	for j := i - 1; j >= 0 && len(open) > 0; j-- {
		tails, err := streamTails(files[j])
		if err != nil {
			break
		}
		for s := range open {
			t, ok := tails[s]
			switch {
			case !ok: // no record of s here: its previous one is older
			case !t.partial:
				delete(open, s)
			default:
				i = j
				if t.begins {
					delete(open, s)
				}
			}
		}
	}
	return i
}

// streamTail is what a file says about a stream's last record in it.
type streamTail struct {
	partial bool // the last record is a part: the line goes on after the file
	begins  bool // that line begins in this file (a full record comes before)
}

// streamTails reads a rotated file's records, by stream.
func streamTails(name string) (map[string]streamTail, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tails := map[string]streamTail{}
	lr := newLineReader(f)
	var d logdriver.Decoder
	for {
		rec, err := lr.next()
		if err == io.EOF {
			if rec = lr.rest(); len(rec) == 0 {
				return tails, nil
			}
		} else if err != nil {
			return nil, err
		}
		// A block's header and lines: full records of its stream.
		if r, _ := d.Record(rec); r.Stream != "" {
			t, ok := tails[r.Stream]
			tails[r.Stream] = streamTail{partial: r.Partial, begins: ok && (!t.partial || t.begins)}
		}
		if err == io.EOF {
			return tails, nil
		}
	}
}

// printer prints the lines that match its options.
type printer struct {
	w         io.Writer
	o         LogOptions
	j         logdriver.Joiner
	ring      [][]byte        // with Lines: the last lines, not printed yet
	ringMax   int             // the ring's size (Lines); 0 once lines are printed as they come
	next      int             // where the ring's next line goes once it is full
	n         int             // lines that matched
	pastUntil bool            // a line later than Until was seen
	seen      map[string]bool // when set: the streams of the lines that matched
	buf       []byte
}

// file prints a whole rotated file: complete, nothing follows. A line's
// last parts may be in the next file: the joiner keeps them.
func (p *printer) file(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("log %s: %w", name, err)
	}
	defer f.Close()
	return p.whole(newLineReader(f))
}

// whole prints the rest of a file that nothing is written to any more.
func (p *printer) whole(lr *lineReader) error {
	if err := p.lines(lr); err != nil {
		return err
	}
	p.unfinished(lr.rest())
	p.j.EndFile()
	return nil
}

// lines prints the complete lines lr has now.
func (p *printer) lines(lr *lineReader) error {
	for {
		rec, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := p.record(rec); err != nil {
			return err
		}
	}
}

// record prints the line that rec (a line of the file) completes. An
// empty line counts in a block (the daemon wrote it); outside one it is
// in no format and left out.
func (p *printer) record(rec []byte) error {
	if l, ok := p.j.Add(rec); ok && (len(l.Msg) > 0 || l.Stream != "") {
		return p.line(l)
	}
	return nil
}

// unfinished prints the last line of a file that has no newline (yet).
func (p *printer) unfinished(rec []byte) {
	if len(rec) > 0 {
		p.record(rec)
	}
}

// end ends the log: an unfinished record (rest), then the lines whose
// parts never ended.
func (p *printer) end(rest []byte) {
	p.unfinished(rest)
	for _, l := range p.j.Flush() {
		p.line(l)
	}
}

func (p *printer) line(l logdriver.Line) error {
	if !p.match(l) {
		return nil
	}
	p.n++
	if p.seen != nil && l.Stream != "" {
		p.seen[l.Stream] = true
	}
	b := p.buf[:0]
	if p.o.Timestamps && !l.Time.IsZero() {
		b = append(l.Time.UTC().AppendFormat(b, logdriver.TimeLayout), ' ')
	}
	b = append(append(b, l.Msg...), '\n')
	p.buf = b
	if p.ringMax == 0 {
		_, err := p.w.Write(b)
		return err
	}
	if len(p.ring) < p.ringMax {
		p.ring = append(p.ring, slices.Clone(b))
		return nil
	}
	p.ring[p.next] = append(p.ring[p.next][:0], b...)
	p.next = (p.next + 1) % len(p.ring)
	return nil
}

// match applies the options. A line not in the record format has no time
// and no stream: --since, --until and --stream leave it out.
func (p *printer) match(l logdriver.Line) bool {
	o := p.o
	timed := !o.Since.IsZero() || !o.Until.IsZero()
	switch {
	case o.Stream != "" && l.Stream != o.Stream, timed && l.Time.IsZero():
		return false
	case !o.Since.IsZero() && l.Time.Before(o.Since):
		return false
	case !o.Until.IsZero() && l.Time.After(o.Until):
		p.pastUntil = true
		return false
	}
	return true
}

// flushRing prints the ring's lines in order; from then on lines are
// printed as they come.
func (p *printer) flushRing() {
	for i := range p.ring {
		p.w.Write(p.ring[(p.next+i)%len(p.ring)])
	}
	p.ring, p.ringMax = nil, 0
}

// lineReader reads a file's lines; a last line without its newline yet
// is kept until the rest comes (the driver may be writing it).
type lineReader struct {
	br   *bufio.Reader
	part []byte
}

func newLineReader(f io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(f, 64<<10)}
}

// next returns the next complete line without its newline, valid until
// the next call; io.EOF when there is none now.
func (l *lineReader) next() ([]byte, error) {
	for {
		b, err := l.br.ReadSlice('\n')
		switch {
		case err == nil && len(l.part) == 0:
			return b[:len(b)-1], nil
		case err == nil:
			line := append(l.part, b[:len(b)-1]...)
			l.part = line[:0]
			return line, nil
		case err == bufio.ErrBufferFull || err == io.EOF:
			l.part = append(l.part, b...)
			if err == io.EOF {
				return nil, io.EOF
			}
		default:
			return nil, err
		}
	}
}

// rest returns the unfinished last line and forgets it.
func (l *lineReader) rest() []byte {
	r := l.part
	l.part = nil
	return r
}

// follow prints what is appended and reopens the path when the driver
// rotates it (the open file was renamed to .1: the inode changed). It
// wakes on inotify events for the log directory, not on a timer, and
// ends with ctx or at the first line past --until.
func follow(ctx context.Context, path string, f *os.File, lr *lineReader, p *printer, bw *bufio.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := dirEvents(ctx, filepath.Dir(path))
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	for {
		if err := p.lines(lr); err != nil {
			return err
		}
		if newer := newerLogs(path, f); len(newer) > 0 {
			// The rest of the old file, then the files written after it:
			// complete, as the driver rotates only between records.
			err := p.whole(lr)
			f.Close()
			for _, nf := range newer[:len(newer)-1] {
				if err == nil {
					err = p.whole(newLineReader(nf))
				}
				nf.Close()
			}
			f = newer[len(newer)-1]
			if err != nil {
				return err
			}
			lr = newLineReader(f)
			continue
		}
		if err := bw.Flush(); err != nil || p.pastUntil {
			return err
		}
		if _, ok := <-events; !ok {
			return nil
		}
	}
}

// newerLogs opens the files the driver wrote after f, oldest first, the
// current one last; nil while f is still the current file. Rotations
// renamed f to PATH.K, so PATH.K-1 .. PATH.1 hold what was written between
// them: more than one rotation between two looks (a fast daemon, a small
// max_size) must not skip a file. When f was rotated out of max_files
// altogether, every file left is newer than it.
func newerLogs(path string, f *os.File) []*os.File {
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	if cur, err := os.Stat(path); err != nil || os.SameFile(cur, fi) {
		return nil // the usual look: f is still the current file
	}
	files, ok := logSnapshot(path)
	if !ok {
		return nil // rotating without pause: the next look
	}
	k := len(files)
	for i, lf := range files {
		if os.SameFile(lf.st, fi) {
			k = i
			break
		}
	}
	var newer []*os.File
	for i := len(files) - 1; i >= 0; i-- {
		if i < k {
			newer = append(newer, files[i].f)
		} else {
			files[i].f.Close() // f itself and what is older
		}
	}
	return newer
}

// logFile is a log file opened under name.
type logFile struct {
	f    *os.File
	name string
	st   os.FileInfo
}

// logSnapshot opens PATH, PATH.1, PATH.2, ..., newest first, and checks
// that each name still holds the file opened under it: a rotation during
// the look (it renames from the oldest down, leaving one name empty for a
// moment) would otherwise put a file twice, or out of order. ok is false
// when the files kept moving for a few looks.
func logSnapshot(path string) (files []logFile, ok bool) {
	for try := 0; try < 4; try++ {
		files = openLogs(path)
		if stillThere(files) {
			return files, true
		}
		for _, lf := range files {
			lf.f.Close()
		}
	}
	return nil, false
}

// openLogs opens the files of the log, newest first. It stops at the
// second missing name in a row: a rotation leaves at most one gap.
func openLogs(path string) []logFile {
	var files []logFile
	for i, missing := 0, 0; missing < 2; i++ {
		name := path
		if i > 0 {
			name = path + "." + strconv.Itoa(i)
		}
		f, err := os.Open(name)
		if err != nil {
			missing++
			continue
		}
		missing = 0
		if st, err := f.Stat(); err == nil {
			files = append(files, logFile{f, name, st})
		} else {
			f.Close()
		}
	}
	return files
}

func stillThere(files []logFile) bool {
	for _, lf := range files {
		if st, err := os.Stat(lf.name); err != nil || !os.SameFile(st, lf.st) {
			return false
		}
	}
	return true
}

// ParseLogTime parses a --since or --until value: a duration back from
// now (10m, 1h30m) or a time: RFC 3339 (2006-01-02T15:04:05Z, with any
// fraction or zone), or in the local zone 2006-01-02T15:04:05,
// 2006-01-02 15:04:05 or 2006-01-02 (midnight).
func ParseLogTime(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a duration back from now must not be negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (10m) nor a time (2006-01-02T15:04:05Z, 2006-01-02 15:04:05, 2006-01-02)", s)
}

// JournalctlArgs is the journalctl command line that prints what
// WriteLogs would for a daemon whose lines go to the journal (logs.driver
// = "journald"): its entries by SYSLOG_IDENTIFIER and CONTAINER_ID, the
// stream by priority, times to the second; socket is logs.journal_socket,
// whose journal namespace it reads.
func JournalctlArgs(id, socket string, o LogOptions) []string {
	args := []string{"--no-pager", "--quiet", "--all", "--output", "cat"}
	if o.Timestamps {
		args[len(args)-1] = "short-iso-precise"
	}
	if ns, ok := strings.CutPrefix(filepath.Dir(socket), "/run/systemd/journal."); ok && filepath.Base(socket) == "socket" {
		args = append(args, "--namespace", ns)
	}
	if o.Lines > 0 {
		args = append(args, "--lines", strconv.Itoa(o.Lines))
	}
	if o.Follow {
		args = append(args, "--follow")
	}
	if !o.Since.IsZero() {
		args = append(args, "--since", "@"+strconv.FormatInt(o.Since.Unix(), 10))
	}
	if !o.Until.IsZero() {
		args = append(args, "--until", "@"+strconv.FormatInt(o.Until.Add(time.Second-1).Unix(), 10))
	}
	args = append(args, "SYSLOG_IDENTIFIER="+logdriver.JournalIdentifier, "CONTAINER_ID="+id)
	switch o.Stream {
	case logdriver.Stdout:
		args = append(args, "PRIORITY=6")
	case logdriver.Stderr:
		args = append(args, "PRIORITY=3")
	}
	return args
}

// WriteJournal runs journalctl (JournalctlArgs) with its output on w and
// errw, until it ends or ctx does.
func WriteJournal(ctx context.Context, id, socket string, w, errw io.Writer, o LogOptions) error {
	cmd := exec.CommandContext(ctx, "journalctl", JournalctlArgs(id, socket, o)...)
	cmd.Stdout, cmd.Stderr = w, errw
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil // interrupted, as -f ends
	}
	if err != nil {
		return fmt.Errorf("journalctl %s: %w", strings.Join(cmd.Args[1:], " "), err)
	}
	return nil
}
