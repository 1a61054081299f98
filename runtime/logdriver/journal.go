package logdriver

import (
	"bytes"
	"encoding/binary"
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

// checkJournal fails when no journald takes entries at path ("" =
// JournalSocket).
func checkJournal(path string) error {
	fd, err := dialJournal(path)
	if err != nil {
		return err
	}
	return closeJournal(fd)
}
