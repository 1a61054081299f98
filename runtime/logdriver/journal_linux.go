package logdriver

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// journalWriter sends each record of a batch (Copy's) as one journal
// entry, in journald's native protocol (as go-systemd's journal package
// does, but to any socket path, and on a plain socket: no net package in
// the driver, whose start is on every start's path): MESSAGE the line,
// PRIORITY info for stdout and err for stderr, SYSLOG_IDENTIFIER=oxios,
// CONTAINER_ID and CONTAINER_NAMESPACE (the fields docker's journald
// driver sets), and CONTAINER_PARTIAL_MESSAGE=true on a part of a line
// longer than the read buffer. journald stamps each entry with the time
// it receives it.
type journalWriter struct {
	fd     int // an unbound datagram socket
	addr   *unix.SockaddrUnix
	fields []byte // the fields every entry has
	entry  []byte
}

// dialJournal checks that a journald takes datagrams at path and returns
// a socket to send them from.
func dialJournal(path string) (int, error) {
	if path == "" {
		path = JournalSocket
	}
	probe, err := journalSocket()
	if err != nil {
		return -1, err
	}
	err = unix.Connect(probe, &unix.SockaddrUnix{Name: path})
	unix.Close(probe)
	if err != nil {
		return -1, fmt.Errorf("logs.driver %q: no systemd-journald at %s: %w", DriverJournald, path, err)
	}
	return journalSocket()
}

func journalSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("journald socket: %w", err)
	}
	return fd, nil
}

func newJournalWriter(fd int, path, id, namespace string) *journalWriter {
	if path == "" {
		path = JournalSocket
	}
	j := &journalWriter{fd: fd, addr: &unix.SockaddrUnix{Name: path}}
	j.fields = appendField(j.fields, "SYSLOG_IDENTIFIER", []byte(JournalIdentifier))
	j.fields = appendField(j.fields, "CONTAINER_ID", []byte(id))
	j.fields = appendField(j.fields, "CONTAINER_NAMESPACE", []byte(namespace))
	return j
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
	err := unix.Sendto(j.fd, e, 0, j.addr)
	if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS) {
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
	return unix.Sendmsg(j.fd, nil, unix.UnixRights(int(f.Fd())), j.addr, 0)
}

// perLine: an entry per line, so Copy writes no blocks to the journal.
func (j *journalWriter) perLine() {}

func (j *journalWriter) Close() error { return unix.Close(j.fd) }

func closeJournal(fd int) error { return unix.Close(fd) }
