package logdriver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Drivers: where the lines go.
const (
	DriverFile     = "file"     // the rotated file at Options.Path (the default)
	DriverJournald = "journald" // the systemd journal, one entry per line
)

// JournalSocket is where systemd-journald takes entries by default; a
// journal namespace's journald listens at /run/systemd/journal.NAME/socket.
const JournalSocket = "/run/systemd/journal/socket"

// JournalIdentifier is the entries' SYSLOG_IDENTIFIER: `journalctl -t
// oxios` finds them.
const JournalIdentifier = "oxios"

// journalWriter sends each record of a batch (Copy's) as one journal
// entry, in journald's native protocol (as go-systemd's journal package
// does, but to any socket path): MESSAGE the line, PRIORITY info for
// stdout and err for stderr, SYSLOG_IDENTIFIER=oxios, CONTAINER_ID and
// CONTAINER_NAMESPACE (the fields docker's journald driver sets), and
// CONTAINER_PARTIAL_MESSAGE=true on a part of a line longer than the read
// buffer. journald stamps each entry with the time it receives it.
type journalWriter struct {
	conn   *net.UnixConn
	addr   *net.UnixAddr
	fields []byte // the fields every entry has
	entry  []byte
}

// dialJournal opens a datagram socket for the journald at path, and
// checks that one listens there.
func dialJournal(path string) (*net.UnixConn, error) {
	if path == "" {
		path = JournalSocket
	}
	probe, err := net.Dial("unixgram", path)
	if err != nil {
		return nil, fmt.Errorf("logs.driver %q: no systemd-journald at %s: %w", DriverJournald, path, err)
	}
	probe.Close()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("journald %s: %w", path, err)
	}
	return conn, nil
}

func newJournalWriter(conn *net.UnixConn, path, id, namespace string) *journalWriter {
	if path == "" {
		path = JournalSocket
	}
	j := &journalWriter{conn: conn, addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	j.fields = appendField(j.fields, "SYSLOG_IDENTIFIER", []byte(JournalIdentifier))
	j.fields = appendField(j.fields, "CONTAINER_ID", []byte(id))
	j.fields = appendField(j.fields, "CONTAINER_NAMESPACE", []byte(namespace))
	return j
}

// appendField appends one field in the native protocol: NAME=VALUE, or,
// for a value with a newline, NAME, its length (64-bit little endian) and
// the value.
func appendField(dst []byte, name string, value []byte) []byte {
	if bytes.IndexByte(value, '\n') < 0 {
		dst = append(append(append(dst, name...), '='), value...)
		return append(dst, '\n')
	}
	dst = append(append(dst, name...), '\n')
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(value)))
	return append(append(dst, value...), '\n')
}

// Write sends p's records in order. On an error it returns the bytes of
// the records sent before it: a record is never half sent.
func (j *journalWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		end := bytes.IndexByte(p[done:], '\n')
		if end < 0 {
			end = len(p) - done
		}
		if err := j.send(ParseRecord(p[done : done+end])); err != nil {
			return done, fmt.Errorf("journald %s: %w", j.addr.Name, err)
		}
		done += min(end+1, len(p)-done)
	}
	return done, nil
}

func (j *journalWriter) send(r Record) error {
	pri := "6" // info
	if r.Stream == Stderr {
		pri = "3" // err
	}
	e := append(j.entry[:0], j.fields...)
	e = appendField(e, "PRIORITY", []byte(pri))
	if r.Partial {
		e = appendField(e, "CONTAINER_PARTIAL_MESSAGE", []byte("true"))
	}
	e = appendField(e, "MESSAGE", r.Msg)
	j.entry = e
	_, _, err := j.conn.WriteMsgUnix(e, nil, j.addr)
	if errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ENOBUFS) {
		return j.sendLarge(e)
	}
	return err
}

// sendLarge sends an entry too large for a datagram as journald takes
// it: in a sealed memfd passed along the datagram.
func (j *journalWriter) sendLarge(e []byte) error {
	fd, err := unix.MemfdCreate("oxios-journal-entry", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "oxios-journal-entry")
	defer f.Close()
	if _, err := f.Write(e); err != nil {
		return err
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return err
	}
	_, _, err = j.conn.WriteMsgUnix(nil, unix.UnixRights(int(f.Fd())), j.addr)
	return err
}

func (j *journalWriter) Close() error { return j.conn.Close() }
