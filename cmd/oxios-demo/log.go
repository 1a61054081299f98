package main

import (
	"io"
	"sync"

	"github.com/sirupsen/logrus"
)

// newLogger logs one line per event: info and debug to stdout, warnings and
// errors to stderr, like most daemons. Both streams end up in the one task
// log that `oxios logs` shows, so the demo exercises both writers.
func newLogger(stdout, stderr io.Writer) *logrus.Logger {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.InfoLevel
	l.AddHook(&splitHook{
		out: stdout, err: stderr,
		f: &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00", DisableColors: true},
	})
	return l
}

type splitHook struct {
	mu       sync.Mutex
	out, err io.Writer
	f        logrus.Formatter
}

func (h *splitHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *splitHook) Fire(e *logrus.Entry) error {
	b, err := h.f.Format(e)
	if err != nil {
		return err
	}
	w := h.out
	if e.Level <= logrus.WarnLevel {
		w = h.err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// One Write per line: lines from the two streams never interleave
	// mid-line in a shared log file.
	_, err = w.Write(b)
	return err
}
