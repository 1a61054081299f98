package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// addressChoice is which containerd oxios talks to and why; `status
// --json` shows it as "containerd" and -v prints it.
type addressChoice struct {
	Address string `json:"address"`
	// Source: "flag", "environment", "file" (set explicitly), or "system" /
	// "private" (found: containerd.address unset).
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// connect dials the configured containerd; with containerd.address unset
// it finds one: the system socket, else the private containerd that
// scripts/containerd.sh starts (make run), so that every command works
// after `make run` without an exported variable.
func connect(ctx context.Context, l *loaded, o task.Options) (*task.Runtime, *addressChoice, error) {
	o.Config = l.cfg
	if origin, ok := l.origins["containerd.address"]; ok {
		ch := &addressChoice{Address: l.cfg.Containerd.Address, Source: strings.Fields(origin)[0], Reason: "set by " + origin}
		r, err := task.Connect(ctx, o)
		return r, ch, unreachable(err, ch)
	}
	sys, priv := systemAddress, privateAddress
	ch := &addressChoice{Address: sys, Source: "system", Reason: "the system containerd; containerd.address is not set"}
	if !isSocket(sys) && !isSocket(priv) {
		err := fmt.Errorf("%w: no socket at %s (system) or %s (private, started by make run)", task.ErrUnreachable, sys, priv)
		return nil, ch, unreachable(err, ch)
	}
	if isSocket(sys) {
		l.cfg.Containerd.Address = sys
		r, err := task.Connect(ctx, o)
		if err == nil || !errors.Is(err, task.ErrUnreachable) || !isSocket(priv) {
			return r, ch, unreachable(err, ch)
		}
		ch.Reason = fmt.Sprintf("the private containerd of make run; the system one at %s does not answer", sys)
	} else {
		ch.Reason = fmt.Sprintf("the private containerd of make run; no system containerd at %s", sys)
	}
	ch.Address, ch.Source = priv, "private"
	l.cfg.Containerd.Address = priv
	r, err := task.Connect(ctx, o)
	return r, ch, unreachable(err, ch)
}

// The sockets tried when containerd.address is unset; tests point them
// at sockets of their own.
var systemAddress, privateAddress = config.DefaultAddress, config.PrivateAddress

// isSocket: p is a socket, or may be one that this user cannot see (a
// root-only directory): then connecting says so, and the hint is sudo.
func isSocket(p string) bool {
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrPermission) {
		return true
	}
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// unreachableError is ErrUnreachable with the choice that led to it, so
// that the hint says what to run next.
type unreachableError struct {
	err    error
	choice *addressChoice
}

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

func unreachable(err error, ch *addressChoice) error {
	if err == nil || !errors.Is(err, task.ErrUnreachable) {
		return err
	}
	return &unreachableError{err: err, choice: ch}
}

const startPrivate = "`sudo bash scripts/containerd.sh start` in the oxios checkout (what make run does)"

func (e *unreachableError) hint() string {
	ch := e.choice
	switch {
	case os.Geteuid() != 0 && isSocket(ch.Address):
		return "; the containerd socket needs root: run oxios with sudo"
	case ch.Source == "private":
		return "; the private containerd does not answer: start it again with " + startPrivate
	case ch.Source == "system" && isSocket(ch.Address):
		return "; the system containerd does not answer: `sudo systemctl restart containerd`, or run a private one with " + startPrivate
	case ch.Source == "system":
		return "; no containerd runs: start the system one (`sudo systemctl start containerd`) or a private one with " + startPrivate
	}
	return fmt.Sprintf("; nothing answers at %s (%s): start the containerd that serves it, or unset it to use the system containerd or make run's private one", ch.Address, ch.Reason)
}
