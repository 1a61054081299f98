package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"
)

// heartbeatName is the file the demo keeps in OXIOS_DEMO_DATA_DIR. The name
// carries the program's name so it cannot collide with oxios-init's own
// lock and state files in the same directory.
const heartbeatName = "oxios-demo.json"

// heartbeatPeriod: often enough for a test or a human to see it move,
// rare enough to cost nothing.
const heartbeatPeriod = time.Second

// heartbeatState is the file's content. Readers may rely on these fields.
type heartbeatState struct {
	PID       int       `json:"pid"`
	Hostname  string    `json:"hostname"`
	Version   string    `json:"version"`
	State     string    `json:"state"` // starting|listening|ready|unready|hung|stopping|exited|killed
	Listen    string    `json:"listen,omitempty"`
	Orphans   []int     `json:"orphans,omitempty"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	Seq       uint64    `json:"seq"` // increments on every write
}

// heartbeat writes heartbeatState atomically: a temporary file in the same
// directory, fsynced, then renamed over the old one, so a reader (or a
// crash) never sees a torn file.
type heartbeat struct {
	dir  string
	mu   sync.Mutex
	st   heartbeatState
	warn func(error) // runtime write failures are logged, not fatal
}

// openHeartbeat creates dir if needed and writes the first state. Failing
// here is fatal: the knob was set, and a test waiting for the file would
// otherwise wait for nothing.
func openHeartbeat(dir string, st heartbeatState, warn func(error)) (*heartbeat, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s=%s: %w", envDataDir, dir, err)
	}
	h := &heartbeat{dir: dir, st: st, warn: warn}
	if err := h.writeLocked(); err != nil {
		return nil, fmt.Errorf("%s=%s: %w", envDataDir, dir, err)
	}
	return h, nil
}

// set updates fields and writes the file at once.
func (h *heartbeat) set(fn func(*heartbeatState)) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(&h.st)
	if err := h.writeLocked(); err != nil {
		h.warn(err)
	}
}

// run rewrites the file every heartbeatPeriod until stop is closed.
func (h *heartbeat) run(stop <-chan struct{}) {
	if h == nil {
		return
	}
	t := time.NewTicker(heartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			h.set(func(*heartbeatState) {})
		}
	}
}

func (h *heartbeat) writeLocked() error {
	h.st.Heartbeat = time.Now().UTC()
	h.st.Seq++
	data, err := json.MarshalIndent(h.st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	final := filepath.Join(h.dir, heartbeatName)
	// renameio: a reader sees the old beat or the new one, never half.
	if err := renameio.WriteFile(final, data, 0o644, renameio.WithStaticPermissions(0o644)); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	return nil
}
