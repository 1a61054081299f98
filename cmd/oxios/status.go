package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/a7garden/oxios/runtime/task"
)

// LSB status exit codes (init-script actions).
const (
	lsbRunning    = 0
	lsbNotRunning = 3
	lsbUnknown    = 4
)

func cmdStatus(c commonFlags, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the status as JSON (stable schema, see README)")
	if fs.Parse(args) != nil {
		return 2
	}
	return withRuntime(c, stderr, lsbUnknown, func(r *task.Runtime) int {
		s, err := r.Status(context.Background())
		if err != nil {
			report(stderr, err)
			return lsbUnknown
		}
		printStatus(stdout, s, *asJSON)
		if s.Running() {
			return lsbRunning
		}
		return lsbNotRunning
	})
}

func printStatus(w io.Writer, s *task.Status, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s)
		return
	}
	fmt.Fprintln(w, s.String())
	for _, d := range s.Details() {
		fmt.Fprintln(w, "  "+d)
	}
}
