package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// commonFlags apply to every command.
type commonFlags struct {
	config  string
	address string
}

// splitCommon takes --config/--address from anywhere in args and returns
// the rest, so `oxios --config F start` and `oxios start --config F` agree.
func splitCommon(args []string) (commonFlags, []string, error) {
	var c commonFlags
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "config" && name != "address") {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return c, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		if name == "config" {
			c.config = val
		} else {
			c.address = val
		}
	}
	return c, rest, nil
}

// loadConfig applies the lookup order, then the address overrides.
func loadConfig(c commonFlags) (*config.Config, error) {
	cfg, err := config.Load(c.config)
	if err != nil {
		return nil, err
	}
	if a := os.Getenv("CONTAINERD_ADDRESS"); a != "" {
		cfg.Containerd.Address = a
	}
	if c.address != "" {
		cfg.Containerd.Address = c.address
	}
	return cfg, nil
}

// withRuntime loads the config, dials containerd and runs fn (the
// command's one library call) with the connection; when either fails it
// prints the error with its hint and returns failCode.
func withRuntime(c commonFlags, stderr io.Writer, failCode int, fn func(*task.Runtime) int) int {
	cfg, err := loadConfig(c)
	if err != nil {
		report(stderr, err)
		return failCode
	}
	r, err := task.Connect(context.Background(), task.Options{Config: cfg, Out: prefixed{stderr}, Progress: isTerminal(stderr)})
	if err != nil {
		report(stderr, err)
		return failCode
	}
	defer r.Close()
	return fn(r)
}

// prefixed writes progress lines as "oxios: ..." on stderr.
type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	fmt.Fprintf(p.w, "oxios: %s", b)
	return len(b), nil
}

// report prints one error line with the next step (the hints live here,
// at the CLI boundary, not in the library).
func report(w io.Writer, err error) {
	var nr *task.NotReadyError
	if errors.As(err, &nr) {
		printTail(w, nr)
	}
	fmt.Fprintf(w, "oxios: %v%s\n", err, hint(err))
}

func hint(err error) string {
	var cfgErr *config.Error
	switch {
	case errors.Is(err, task.ErrUnreachable) && strings.Contains(err.Error(), "permission denied"):
		return "; the containerd socket needs root: run oxios with sudo"
	case errors.Is(err, task.ErrUnreachable):
		return "; start containerd (`sudo systemctl start containerd`, or `make run`, which starts a private one) or point --address / containerd.address at its socket"
	case errors.Is(err, task.ErrLegacyRunning):
		return ""
	case errors.Is(err, task.ErrPortInUse):
		return "; stop that process or set container.port to a free port"
	case errors.Is(err, task.ErrArchiveMissing):
		return "; build it with `make image`, or set image.archive"
	case errors.Is(err, config.ErrNotFound):
		return "; create it (see deploy/oxios.toml) or drop --config / $OXIOS_CONFIG"
	case errors.As(err, &cfgErr):
		return " (every key: deploy/oxios.toml)"
	case errors.Is(err, task.ErrNotReady):
		var nr *task.NotReadyError
		if errors.As(err, &nr) {
			return fmt.Sprintf(" (full log: %s)", nr.LogPath)
		}
	}
	return ""
}

func printTail(w io.Writer, nr *task.NotReadyError) {
	if len(nr.Tail) == 0 {
		return
	}
	fmt.Fprintf(w, "  -- recent log (last %d lines) --\n", len(nr.Tail))
	for _, l := range nr.Tail {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("oxios "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// isTerminal: progress lines only for a person watching.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
