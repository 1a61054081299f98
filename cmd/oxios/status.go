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
	cfg, err := loadConfig(c)
	if err != nil {
		report(stderr, err)
		return lsbUnknown
	}
	r, err := task.Connect(context.Background(), task.Options{Config: cfg})
	if err != nil {
		report(stderr, err)
		return lsbUnknown
	}
	defer r.Close()
	s, err := r.Status(context.Background())
	if err != nil {
		report(stderr, err)
		return lsbUnknown
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(s)
	} else {
		fmt.Fprintln(stdout, s.String())
		for _, d := range s.Details() {
			fmt.Fprintln(stdout, "  "+d)
		}
	}
	if s.Running() {
		return lsbRunning
	}
	return lsbNotRunning
}
