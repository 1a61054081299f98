package logdriver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ReadSize is the buffer each stream is read with, and so the longest
// message one record holds: a longer line is split into parts (tag P) of
// this size. A read takes whatever the pipe holds, so under load one read
// and one write carry hundreds of lines, and a quiet daemon's line is
// written as soon as it is read: no timer holds a line back.
//
// The pipe keeps its default size on purpose: a larger one lets the
// daemon run further ahead, and the bytes have left the CPU's cache by the
// time the driver reads them (more CPU per byte in bench/logs).
const ReadSize = 256 << 10

// flushSize bounds a batch: many short lines grow by their prefixes (an
// empty line becomes a 41-byte record), and a small batch is written
// while it is still in the CPU's cache (BenchmarkCopy).
const flushSize = 64 << 10

// recoverer is an error writer that is told when writing works again,
// instead of being sent a line saying so.
type recoverer interface{ recovered() }

// perLine is a writer that takes records only, never blocks (the
// journal's: an entry per line).
type perLine interface{ perLine() }

// Copy writes the records of stdout and stderr (either may be nil) until
// both end. Each read's whole lines go out as one write under a lock, so
// the streams never interleave inside a line, and a line is never cut by
// another stream's: a read of BlockMin bytes or more as one block, a
// shorter one as a record per line. A partial line waits in its stream's
// buffer for the rest, until the buffer is full (a part, tag P) or the
// stream ends.
//
// A write error (a full disk) never stops the reading: if the driver
// stopped reading, the daemon's next write to its stdout would block, or
// get SIGPIPE once the driver is gone. Lines are dropped instead, the
// error is reported once on errw, and once writing works again a marker
// record says how many were lost.
func Copy(w io.Writer, errw io.Writer, stdout, stderr io.Reader) error {
	if errw == nil {
		errw = io.Discard
	}
	l := &lossy{w: w, errw: errw}
	blockMin := BlockMin
	if _, ok := w.(perLine); ok {
		blockMin = ReadSize + 1 // never
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, s := range []struct {
		name string
		r    io.Reader
	}{{Stdout, stdout}, {Stderr, stderr}} {
		if s.r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- copyStream(l, s.name, s.r, blockMin)
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, <-errs)
}

// copyStream reads r until EOF; only a read error ends it early.
func copyStream(l *lossy, name string, r io.Reader, blockMin int) error {
	s := &stream{name: name, l: l, blockMin: blockMin, out: make([]byte, 0, flushSize+ReadSize)}
	buf := make([]byte, ReadSize)
	held := 0 // bytes of an unfinished line at the start of buf
	for {
		n, err := r.Read(buf[held:])
		if n == 0 && err == nil {
			continue
		}
		rest := s.records(buf[:held+n], len(buf), err != nil)
		held = copy(buf, rest)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
}

// stream turns one stream's reads into blocks and batches of records.
type stream struct {
	name     string
	l        *lossy
	blockMin int // the smallest payload written as a block
	stamp    stamper
	prefix   []byte // "TIME STREAM " of the current read
	out      []byte // the batch
}

// records writes the whole lines of data (one read, after what was held
// from the one before), as a block or as records, and returns the
// unfinished line: none when it fills the buffer (a part, tag P) or the
// stream ended (a line).
func (s *stream) records(data []byte, bufSize int, ended bool) []byte {
	// One time per read: the lines in it arrived together.
	s.prefix = append(s.stamp.append(s.prefix[:0], time.Now()), ' ')
	s.prefix = append(append(s.prefix, s.name...), ' ')
	if end := bytes.LastIndexByte(data, '\n') + 1; end >= s.blockMin {
		// Header and payload in one write: rotation never splits a
		// block, and the other stream cannot come between them.
		s.out = appendHeader(s.out, s.prefix, end)
		s.out = s.l.write(append(s.out, data[:end]...))
		data = data[end:]
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		s.out = appendRecord(s.out, s.prefix, Full, data[:i])
		data = data[i+1:]
		if len(s.out) >= flushSize {
			s.out = s.l.write(s.out)
		}
	}
	switch {
	case len(data) == bufSize:
		s.out = appendRecord(s.out, s.prefix, Partial, data)
		data = nil
	case ended && len(data) > 0:
		s.out = appendRecord(s.out, s.prefix, Full, data)
		data = nil
	}
	s.out = s.l.write(s.out)
	return data
}

// lossy writes batches of records and blocks, counting instead of failing
// when the file cannot take them.
type lossy struct {
	mu      sync.Mutex
	w       io.Writer
	errw    io.Writer
	failing bool   // writes fail; reported once, until they work again
	dropped int    // records lost since the last marker
	lastErr error  // the last write error, for the marker
	tail    []byte // the rest of a record a failed write cut short
}

var newline = []byte{'\n'}

// write writes the batch b and returns b[:0] for the next one.
func (l *lossy) write(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing && !l.resume() {
		l.dropped += lineCount(b)
		return b[:0]
	}
	if n, err := l.w.Write(b); err != nil {
		l.failed(err, b, n)
	}
	return b[:0]
}

// failed notes a write of b that failed after n bytes. A record (or a
// block) cut short is kept, to be finished first when writing works
// again, so that the file holds whole records only; the lines after it
// are counted as lost.
func (l *lossy) failed(err error, b []byte, n int) {
	if !l.failing {
		fmt.Fprintf(l.errw, "%s: %v: dropping log lines until writing works again\n", time.Now().UTC().Format(time.RFC3339), err)
	}
	l.failing, l.lastErr = true, err
	end := n + cutShort(b, n) // of the record that holds byte n-1
	l.tail = append(l.tail[:0], b[n:end]...)
	l.dropped += lineCount(b[end:])
}

// resume finishes a cut record, writes the marker that says how many
// lines were lost, and reports whether writing works again.
func (l *lossy) resume() bool {
	if len(l.tail) > 0 {
		n, err := l.w.Write(l.tail)
		l.tail = l.tail[n:]
		if err != nil {
			l.lastErr = err
			return false
		}
	}
	if l.dropped > 0 {
		prefix := append(appendStamp(nil, time.Now()), " "+Stderr+" "...)
		m := appendRecord(nil, prefix, Full, fmt.Appendf(nil, "oxios: %d log lines dropped (%v)", l.dropped, l.lastErr))
		dropped := l.dropped
		l.dropped = 0
		if n, err := l.w.Write(m); err != nil {
			l.lastErr = err
			if n == 0 {
				l.dropped = dropped
			} else {
				l.tail = append(l.tail[:0], m[n:]...) // a marker cut short is finished too
			}
			return false
		}
		if _, ok := l.errw.(recoverer); !ok {
			fmt.Fprintf(l.errw, "oxios log driver: writing again after %d dropped lines\n", dropped)
		}
	}
	if r, ok := l.errw.(recoverer); ok {
		r.recovered()
	}
	l.failing = false
	return true
}
