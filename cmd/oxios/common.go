package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/a7garden/oxios/runtime/config"
	"github.com/a7garden/oxios/runtime/task"
)

// loaded is the effective configuration and where its values came from.
type loaded struct {
	cfg *config.Config
	// origins: key -> "flag --address", "environment $CONTAINERD_ADDRESS",
	// "file PATH:LINE"; a key not in it has its default.
	origins map[string]string
}

// loadConfig applies the lookup order, then the address overrides.
func loadConfig(c *commonFlags) (*loaded, error) {
	cfg, err := config.Load(c.config)
	if err != nil {
		return nil, err
	}
	l := &loaded{cfg: cfg, origins: map[string]string{}}
	for k, line := range cfg.FileKeys {
		l.origins[k] = fmt.Sprintf("file %s:%d", cfg.Source, line)
	}
	if a := os.Getenv("CONTAINERD_ADDRESS"); a != "" {
		cfg.Containerd.Address = a
		l.origins["containerd.address"] = "environment $CONTAINERD_ADDRESS"
	}
	if c.address != "" {
		cfg.Containerd.Address = c.address
		l.origins["containerd.address"] = "flag --address"
	}
	return l, nil
}

// withRuntime loads the config, dials containerd and runs fn (the
// command's one library call) with the connection; when either fails it
// prints the error with its hint and returns failCode (exitUsage for a
// config error).
func withRuntime(e *env, failCode int, fn func(*conn) int) int {
	return withRuntimeOr(e, failCode, fn, nil)
}

// withRuntimeOr is withRuntime with outage, when not nil, called after an
// unreachable containerd is reported: status says what it can without it.
func withRuntimeOr(e *env, failCode int, fn func(*conn) int, outage func(*config.Config)) int {
	l, err := loadConfig(e.common)
	if err != nil {
		report(e.stderr, err)
		return configFailCode(err, failCode)
	}
	r, choice, err := connect(context.Background(), l, task.Options{Out: prefixed{e.stderr}, Progress: isTerminal(e.stderr)})
	if e.common.verbose && choice != nil {
		fmt.Fprintf(e.stderr, "oxios: containerd %s (%s)\n", choice.Address, choice.Reason)
	}
	if err != nil {
		report(e.stderr, err)
		if outage != nil && errors.Is(err, task.ErrUnreachable) {
			outage(l.cfg)
		}
		return failCode
	}
	defer r.Close()
	return fn(&conn{r: r, choice: choice, cfg: l.cfg})
}

// conn is a live connection and what it was made with.
type conn struct {
	r      *task.Runtime
	choice *addressChoice
	cfg    *config.Config
}

// configFailCode: a missing --config file or a bad key is a usage error
// (exit 2), whatever the command.
func configFailCode(err error, otherwise int) int {
	var ce *config.Error
	if errors.Is(err, config.ErrNotFound) || errors.As(err, &ce) {
		return exitUsage
	}
	return otherwise
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
	var ue *unreachableError
	switch {
	case errors.As(err, &ue):
		return ue.hint()
	case errors.Is(err, task.ErrLegacyRunning):
		return ""
	case errors.Is(err, task.ErrPortInUse):
		return "; stop that process or set container.port to a free port"
	case errors.Is(err, task.ErrArchiveMissing):
		return "; build it with `make image`, or set image.archive"
	case errors.Is(err, config.ErrNotFound):
		return "; create it (see deploy/oxios.toml) or drop --config / $OXIOS_CONFIG"
	case errors.As(err, &cfgErr):
		if s := keySuggestion(cfgErr); s != "" {
			return s
		}
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

// keySuggestion: "; did you mean container.port?" for an unknown key
// close to a known one.
func keySuggestion(e *config.Error) string {
	if e.Key == "" || !strings.HasPrefix(e.Msg, "unknown key") {
		return ""
	}
	var keys []string
	for _, en := range config.Default().Entries() {
		keys = append(keys, en.Key)
	}
	if s := suggest(e.Key, keys); s != "" {
		return "; did you mean " + s + "?"
	}
	return ""
}
