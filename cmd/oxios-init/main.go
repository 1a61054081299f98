// Command oxios-init is the container's PID 1: a drop-in for tini that
// also rewrites signals, stops the whole tree, restarts with backoff,
// cleans stale locks and runs health probes. It only wires flags and
// environment to runtime/supervisor, runtime/stalelock and health.
package main

import (
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/health"
	"github.com/a7garden/oxios/runtime/contract"
	"github.com/a7garden/oxios/runtime/stalelock"
	"github.com/a7garden/oxios/runtime/supervisor"
)

var version = "0.1.0"

// godebugDefault is the GODEBUG default the Makefile links into the Go
// runtime (INIT_GODEBUG), linked here too so that the supervisor knows it.
var godebugDefault string

func main() {
	// Before anything installs a signal handler: which signals did our
	// parent leave ignored? They stay ignored, here and in the child.
	ignored := supervisor.StartupIgnored()
	oneP()
	os.Exit(run(os.Args[0], os.Args[1:], ignored, os.Stdout, os.Stderr))
}

// oneP runs oxios-init's goroutines on one P unless GOMAXPROCS says
// otherwise: they mostly wait, and with more Ps every wake-up of one of
// them also wakes another thread to look for work, which is most of what
// oxios-init costs while a daemon starts. (The environment is not
// touched: the daemon inherits GOMAXPROCS as it was.)
func oneP() {
	if os.Getenv("GOMAXPROCS") == "" {
		goruntime.GOMAXPROCS(1)
	}
}

// run is oxios-init invoked as argv0 (its name picks tini's or dumb-init's
// defaults) with args.
func run(argv0 string, args []string, ignored []syscall.Signal, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "probe" {
		return probe(args[1:], stderr)
	}
	// First, so that a signal sent while the rest starts up is queued.
	sigs := supervisor.Catch(ignored)
	token := takeNotifyToken()
	o, err := parse(argv0, args, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "oxios-init: %v\n(see oxios-init -h)\n", err)
		return 1
	}
	switch {
	case o.help:
		fmt.Fprint(stdout, usage)
		return 0
	case o.version:
		fmt.Fprintf(stdout, "oxios-init version %s\n", version)
		return 0
	}
	o.health.NotifyToken = token
	log := newLogger(o, stderr)
	if kept := sigs.Kept(); len(kept) > 0 {
		log.Debugf("signals ignored at start stay ignored and are passed on ignored: %v", kept)
	}
	// The daemon gets its own NOTIFY_SOCKET (notify://) or none: the one
	// oxios-init received is for oxios-init's READY=1 to the host.
	childNotify, err := o.health.PrepareNotify()
	if err != nil {
		log.Error(err)
		return 1
	}
	o.sup.Env = health.ChildEnv(os.Environ(), childNotify)
	o.sup.LinkedGODEBUG = godebugDefault
	sup, err := supervisor.New(o.sup, sigs, log)
	if err != nil {
		log.Error(err)
		return 1
	}
	if err := becomeInit(o, log); err != nil {
		log.Error(err)
		return 1
	}
	lk, err := lockInstance(o.lock)
	if err != nil {
		log.Error(err)
		return 1
	}
	defer lk.Close()
	cleanStale(o.stale, log) // only once the instance lock is held
	mon, err := startHealth(o.health, sup, log)
	if err != nil {
		log.Error(err)
		return 1
	}
	defer mon.Close()
	return sup.Run(mon)
}

// notifyTokenEnv is the host's per-container notify secret.
const notifyTokenEnv = contract.NotifyTokenEnv

// takeNotifyToken removes the host's notify secret from the environment
// (the daemon inherits what is left) and, when there is one, makes this
// process non-dumpable: a process of the same uid in the container can
// then neither read /proc/1/environ, where the kernel keeps the original
// environment, nor ptrace oxios-init for it.
func takeNotifyToken() string {
	token, ok := os.LookupEnv(notifyTokenEnv)
	if !ok {
		return ""
	}
	os.Unsetenv(notifyTokenEnv)
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	return token
}

// lockInstance takes the --lock instance lock, if one is configured (a
// nil *stalelock.Lock closes as a no-op).
func lockInstance(path string) (*stalelock.Lock, error) {
	if path == "" {
		return nil, nil
	}
	return stalelock.Acquire(path)
}

// cleanStale removes the stale files of --stale and logs each outcome.
func cleanStale(paths []string, log *logrus.Logger) {
	for _, r := range stalelock.Clean(paths) {
		e := log.WithField("path", r.Path)
		switch r.Action {
		case stalelock.Removed:
			e.Info("removed stale file")
		case stalelock.Missing:
			e.Debug("stale path absent")
		default:
			e.Warnf("stale path %s: %s", r.Action, r.Detail)
		}
	}
}

// startHealth creates the probe monitor, wired to sup (which also starts
// its exec probes), and opens its endpoint.
func startHealth(cfg health.Config, sup *supervisor.Supervisor, log *logrus.Logger) (*health.Monitor, error) {
	mon, err := health.NewMonitor(cfg, health.Hooks{
		Restart: sup.Restart,
		Child: func() health.ChildState {
			st := sup.State()
			return health.ChildState{PID: st.PID, State: st.State, Restarts: st.Restarts, Backoff: st.Backoff}
		},
		Spawner: sup,
	}, log)
	if err != nil {
		return nil, err
	}
	if err := mon.Start(); err != nil {
		return nil, err
	}
	return mon, nil
}

// becomeInit sets the subreaper and parent-death signal, and warns, as
// tini does, when zombies would not be reparented to us.
func becomeInit(o *options, log *logrus.Logger) error {
	if o.subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("become a child subreaper (-s): %w", err)
		}
	}
	if o.pdeathsig != 0 {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(o.pdeathsig), 0, 0, 0); err != nil {
			return fmt.Errorf("set parent-death signal (-p): %w", err)
		}
	}
	// dumb-init never warns: it is run outside containers too (a script's
	// #! line), where nothing is to be reaped.
	if os.Getpid() != 1 && !o.dumbInit {
		var sub int32
		_ = unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&sub)), 0, 0, 0)
		if sub == 0 {
			log.Warn("oxios-init is not PID 1 and is not a child subreaper: zombie reaping won't work, " +
				"since orphaned processes are not re-parented to oxios-init. " +
				"Use -s (or TINI_SUBREAPER / OXIOS_INIT_SUBREAPER) or run it as PID 1.")
		}
	}
	return nil
}

func newLogger(o *options, w io.Writer) *logrus.Logger {
	log := logrus.New()
	log.Out = supervisor.TerminalWriter(w) // writes as a background job on a terminal
	if o.logFormat == "json" {
		log.Formatter = &logrus.JSONFormatter{}
	} else {
		log.Formatter = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano, DisableColors: true}
	}
	// tini's verbosity: 1 (default) warnings, 2 info, 3 debug, 4 trace.
	switch {
	case o.verbosity <= 0:
		log.Level = logrus.ErrorLevel
	case o.verbosity == 1:
		log.Level = logrus.WarnLevel
	case o.verbosity == 2:
		log.Level = logrus.InfoLevel
	case o.verbosity == 3:
		log.Level = logrus.DebugLevel
	default:
		log.Level = logrus.TraceLevel
	}
	return log
}

// probe implements `oxios-init probe readiness|liveness|startup`.
func probe(args []string, stderr io.Writer) int {
	addr := os.Getenv("OXIOS_INIT_HEALTH_LISTEN")
	timeout := 2 * time.Second
	kind := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "-") && (name == "health-listen" || name == "timeout"):
			if !hasVal {
				if i+1 >= len(args) {
					fmt.Fprintf(stderr, "oxios-init probe: --%s needs a value\n", name)
					return 1
				}
				i++
				val = args[i]
			}
			if name == "health-listen" {
				addr = val
			} else {
				d, err := time.ParseDuration(val)
				if err != nil {
					fmt.Fprintf(stderr, "oxios-init probe: --timeout %q: %v\n", val, err)
					return 1
				}
				timeout = d
			}
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "oxios-init probe: unknown option %s\n", a)
			return 1
		case kind == "":
			kind = a
		default:
			fmt.Fprintf(stderr, "oxios-init probe: unexpected argument %q\n", a)
			return 1
		}
	}
	switch kind {
	case "readiness", "liveness", "startup":
	default:
		fmt.Fprintf(stderr, "oxios-init probe: want readiness, liveness or startup, got %q\n", kind)
		return 1
	}
	if addr == "" {
		fmt.Fprintln(stderr, "oxios-init probe: no health endpoint: set --health-listen or OXIOS_INIT_HEALTH_LISTEN")
		return 1
	}
	if err := health.Query(addr, kind, timeout); err != nil {
		fmt.Fprintf(stderr, "oxios-init probe %s: %v\n", kind, err)
		return 1
	}
	return 0
}
