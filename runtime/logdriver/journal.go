package logdriver

import (
	"bytes"
	"fmt"

	"github.com/coreos/go-systemd/v22/journal"
)

// Drivers: where the lines go.
const (
	DriverFile     = "file"     // the rotated file at Options.Path (the default)
	DriverJournald = "journald" // the systemd journal, one entry per line
)

// JournalSocket is where systemd-journald takes entries (go-systemd's
// journal package sends there).
const JournalSocket = "/run/systemd/journal/socket"

// JournalIdentifier is the entries' SYSLOG_IDENTIFIER: `journalctl -t
// oxios` finds them.
const JournalIdentifier = "oxios"

// journalWriter sends each record of a batch (Copy's) as one journal
// entry: MESSAGE the line, PRIORITY info for stdout and err for stderr,
// SYSLOG_IDENTIFIER=oxios, CONTAINER_ID and CONTAINER_NAMESPACE (the
// fields docker's journald driver sets), and CONTAINER_PARTIAL_MESSAGE=true
// on a part of a line longer than the read buffer. journald stamps each
// entry with the time it receives it.
type journalWriter struct {
	full, partial map[string]string
}

func newJournalWriter(id, namespace string) *journalWriter {
	full := map[string]string{"SYSLOG_IDENTIFIER": JournalIdentifier, "CONTAINER_ID": id, "CONTAINER_NAMESPACE": namespace}
	partial := map[string]string{"CONTAINER_PARTIAL_MESSAGE": "true"}
	for k, v := range full {
		partial[k] = v
	}
	return &journalWriter{full: full, partial: partial}
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
		r := ParseRecord(p[done : done+end])
		pri, vars := journal.PriInfo, j.full
		if r.Stream == Stderr {
			pri = journal.PriErr
		}
		if r.Partial {
			vars = j.partial
		}
		if err := journal.Send(string(r.Msg), pri, vars); err != nil {
			return done, fmt.Errorf("journald %s: %w", JournalSocket, err)
		}
		done += min(end+1, len(p)-done)
	}
	return done, nil
}

func (j *journalWriter) Close() error { return nil }

// checkJournal fails when no journald takes entries at JournalSocket.
func checkJournal() error {
	if !journal.Enabled() {
		return fmt.Errorf("logs.driver %q: no systemd-journald at %s", DriverJournald, JournalSocket)
	}
	return nil
}
