package logdriver

import (
	"bytes"
	"time"
)

// The log file is in the CRI log format, the one the kubelet writes and
// `kubectl logs` reads: one record per line,
//
//	TIME STREAM TAG MESSAGE
//
// TIME is RFC 3339 in UTC with nanoseconds, always nine digits so that the
// columns line up in less; STREAM is stdout or stderr; TAG is F for a full
// line, P for a part of one that goes on in the next record of the same
// stream. MESSAGE is the daemon's bytes as written, without the newline.

// TimeLayout is the record's time: fixed width, RFC 3339 with nanoseconds.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Stream names, as the CRI format spells them.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Tags: a full line, or a part of a line longer than the driver's buffer.
const (
	Full    = 'F'
	Partial = 'P'
)

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

// Record is one parsed line of the log file.
type Record struct {
	Time    time.Time
	Stream  string // Stdout, Stderr, or "" for a line not in the format
	Partial bool   // the message goes on in the stream's next record
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
	if len(rest) < 2 || rest[1] != ' ' || rest[0] != Full && rest[0] != Partial {
		// The kubelet also writes "F" with nothing after it for an empty line.
		if len(rest) == 1 && (rest[0] == Full || rest[0] == Partial) {
			return Record{Time: t, Stream: stream, Partial: rest[0] == Partial, Msg: rest[1:]}
		}
		return Record{Msg: line}
	}
	return Record{Time: t, Stream: stream, Partial: rest[0] == Partial, Msg: rest[2:]}
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
	pending [2]*Line // a line's parts so far, by stream
}

// Add takes one line of the file (without its newline) and returns the
// line it completes, if it completes one. The returned Msg may alias
// record and is valid until the next call.
func (j *Joiner) Add(record []byte) (Line, bool) {
	r := ParseRecord(record)
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
