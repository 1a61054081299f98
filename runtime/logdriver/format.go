package logdriver

import (
	"bytes"
	"strconv"
	"time"
)

// The log file is in the CRI log format, the one the kubelet writes and
// `kubectl logs` reads, with one addition for bursts. A quiet daemon's
// lines are one record each:
//
//	TIME STREAM TAG MESSAGE
//
// TIME is RFC 3339 in UTC with nanoseconds, always nine digits so that the
// columns line up in less; STREAM is stdout or stderr; TAG is F for a full
// line, P for a part of one that goes on in the next record of the same
// stream. MESSAGE is the daemon's bytes as written, without the newline.
//
// A burst (one read of BlockMin bytes or more) is one block instead: a
// header in the record's shape, TAG B and the payload's length,
//
//	TIME STREAM B LEN
//
// then exactly LEN bytes: whole lines as the daemon wrote them, all of
// that time and stream. The kernel's cost of a write is per byte, and a
// prefix on every line of a burst is 40 % more bytes than the daemon
// wrote: a block costs one header per read instead. A reader goes by the
// length, not by the payload's looks: a line in it that reads like a
// record or a header is still a line of the block (Decoder).

// TimeLayout is the record's time: fixed width, RFC 3339 with nanoseconds.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Stream names, as the CRI format spells them.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Tags: a full line, a part of a line longer than the driver's buffer,
// or a block's header.
const (
	Full    = 'F'
	Partial = 'P'
	Block   = 'B'
)

// BlockMin is the smallest read written as a block: below it (a quiet
// daemon, the usual case) the records cost little and keep the plain CRI
// format that other tools read.
const BlockMin = 4 << 10

// appendStamp appends t in TimeLayout, UTC.
func appendStamp(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, TimeLayout)
}

// stamper is appendStamp for a stream of times that mostly share their
// second (one per read): the date and clock are formatted once a second,
// the nanoseconds by hand, as a daemon that writes a line at a time costs
// the driver a stamp per line.
type stamper struct {
	sec  int64
	head []byte // "2006-01-02T15:04:05."
}

func (s *stamper) append(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if sec := t.Unix(); sec != s.sec || s.head == nil {
		s.sec, s.head = sec, t.AppendFormat(s.head[:0], "2006-01-02T15:04:05.")
	}
	dst = append(dst, s.head...)
	var d [9]byte
	ns := t.Nanosecond()
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + ns%10)
		ns /= 10
	}
	return append(append(dst, d[:]...), 'Z')
}

// appendRecord appends one record: prefix is "TIME STREAM " (built once
// per read), then the tag, the message and the newline.
func appendRecord(dst, prefix []byte, tag byte, msg []byte) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, tag, ' ')
	dst = append(dst, msg...)
	return append(dst, '\n')
}

// appendHeader appends a block's header for a payload of n bytes.
func appendHeader(dst, prefix []byte, n int) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, Block, ' ')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '\n')
}

// Record is one parsed line of the log file.
type Record struct {
	Time    time.Time
	Stream  string // Stdout, Stderr, or "" for a line not in the format
	Partial bool   // the message goes on in the stream's next record
	Block   int    // a block's header: the payload's length (0 otherwise)
	Msg     []byte // without the newline; aliases the parsed line
}

// ParseRecord parses one line (without its newline). A line that is not a
// record (written before oxios used this format) comes back whole as Msg
// with no time and no stream, so that it is still shown.
func ParseRecord(line []byte) Record {
	// TIME: its own field, of any RFC 3339 width (other writers of the
	// format trim trailing zeros).
	sp := bytes.IndexByte(line, ' ')
	if sp < len("2006-01-02T15:04:05Z") || line[4] != '-' || line[10] != 'T' {
		return Record{Msg: line}
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:sp]))
	if err != nil {
		return Record{Msg: line}
	}
	rest := line[sp+1:]
	var stream string
	switch {
	case bytes.HasPrefix(rest, []byte(Stdout+" ")):
		stream = Stdout
	case bytes.HasPrefix(rest, []byte(Stderr+" ")):
		stream = Stderr
	default:
		return Record{Msg: line}
	}
	rest = rest[len(stream)+1:]
	if n := blockLen(rest); n > 0 {
		return Record{Time: t, Stream: stream, Block: n, Msg: rest[len(rest):]}
	}
	if len(rest) < 2 || rest[1] != ' ' || rest[0] != Full && rest[0] != Partial {
		// The kubelet also writes "F" with nothing after it for an empty line.
		if len(rest) == 1 && (rest[0] == Full || rest[0] == Partial) {
			return Record{Time: t, Stream: stream, Partial: rest[0] == Partial, Msg: rest[1:]}
		}
		return Record{Msg: line}
	}
	return Record{Time: t, Stream: stream, Partial: rest[0] == Partial, Msg: rest[2:]}
}

// maxHeader bounds a header's length: the longest RFC 3339 time (with a
// zone), the stream, the tag and nine digits.
const maxHeader = len("2006-01-02T15:04:05.000000000+07:00 stdout B 123456789")

// blockLen returns LEN of a header's "B LEN", or 0: one to nine digits,
// not zero.
func blockLen(rest []byte) int {
	if len(rest) < 3 || len(rest) > 11 || rest[0] != Block || rest[1] != ' ' {
		return 0
	}
	n := 0
	for _, c := range rest[2:] {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// Decoder reads the file's lines in order as records: a block's header
// is taken in, and each line of its payload comes back as a full record
// of the header's time and stream, whatever it looks like. A block cut
// short (the driver was killed during its write) ends at the first line
// that overruns it, which is read as a record again, and at the end of a
// file (EndFile): a file never starts inside a block.
type Decoder struct {
	left   int // bytes of the current block not read yet
	time   time.Time
	stream string
}

// Record returns line's record; false for a block's header, which is no
// line of the daemon's.
func (d *Decoder) Record(line []byte) (Record, bool) {
	if d.left > 0 {
		if len(line) < d.left {
			d.left -= len(line) + 1
			return Record{Time: d.time, Stream: d.stream, Msg: line}, true
		}
		d.left = 0
	}
	r := ParseRecord(line)
	if r.Block > 0 {
		d.left, d.time, d.stream = r.Block, r.Time, r.Stream
		return r, false
	}
	return r, true
}

// EndFile ends a block cut short at the end of a file.
func (d *Decoder) EndFile() { d.left = 0 }

// recordLen returns the length of p's first record, newline included: a
// block's header and payload together, or the rest of p when it ends
// inside the record.
func recordLen(p []byte) int {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		return len(p)
	}
	// A header is short: a longer line is a record (cheaply, as Writer
	// walks a batch's records at each rotation).
	if i > maxHeader {
		return i + 1
	}
	if r := ParseRecord(p[:i]); r.Block > 0 {
		return min(len(p), i+1+r.Block)
	}
	return i + 1
}

// lineCount returns the daemon's lines in p, whole records: one a
// record, a block's payload lines.
func lineCount(p []byte) int {
	n := 0
	for len(p) > 0 {
		l := recordLen(p)
		if i := bytes.IndexByte(p[:l], '\n'); i >= 0 && i+1 < l {
			n += bytes.Count(p[i+1:l], newline)
		} else {
			n++
		}
		p = p[l:]
	}
	return n
}

// Line is one line of the daemon's output read back from the log: the
// message of its records, parts joined.
type Line struct {
	Time   time.Time // of its first part; zero for a line not in the format
	Stream string    // "" for a line not in the format
	Msg    []byte    // without the newline
}

// Joiner turns records back into lines, joining each stream's parts.
type Joiner struct {
	Decoder
	pending [2]*Line // a line's parts so far, by stream
}

// Add takes one line of the file (without its newline) and returns the
// line it completes, if it completes one. The returned Msg may alias
// record and is valid until the next call. A block's line ends the
// stream's line in parts, as a full record does.
func (j *Joiner) Add(record []byte) (Line, bool) {
	r, ok := j.Record(record)
	if !ok {
		return Line{}, false
	}
	i := 0
	if r.Stream == Stderr {
		i = 1
	}
	p := j.pending[i]
	switch {
	case r.Stream == "": // not a record: a line of its own
		return Line{Msg: r.Msg}, true
	case r.Partial && p == nil:
		j.pending[i] = &Line{Time: r.Time, Stream: r.Stream, Msg: append([]byte(nil), r.Msg...)}
		return Line{}, false
	case r.Partial:
		p.Msg = append(p.Msg, r.Msg...)
		return Line{}, false
	case p != nil:
		j.pending[i] = nil
		p.Msg = append(p.Msg, r.Msg...)
		return *p, true
	}
	return Line{Time: r.Time, Stream: r.Stream, Msg: r.Msg}, true
}

// Flush returns the lines whose last part never came (the file ends
// inside them), oldest first.
func (j *Joiner) Flush() []Line {
	var out []Line
	for i, p := range j.pending {
		if p != nil {
			out = append(out, *p)
			j.pending[i] = nil
		}
	}
	if len(out) == 2 && out[1].Time.Before(out[0].Time) {
		out[0], out[1] = out[1], out[0]
	}
	return out
}
