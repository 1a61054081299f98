package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/a7garden/oxios/health"
	"github.com/a7garden/oxios/runtime/contract"
	"github.com/a7garden/oxios/runtime/supervisor"
)

const usage = `oxios-init - PID 1 for containers (drop-in for tini and dumb-init)

Usage: oxios-init [OPTIONS] [--] CMD [ARGS...]
       oxios-init probe readiness|liveness|startup [--health-listen ADDR] [--timeout D]

Invoked as dumb-init (a link of that name), it defaults to dumb-init's
semantics: the child leads its own session, signals go to its whole
process group, SIGTSTP/SIGTTIN/SIGTTOU are forwarded as SIGSTOP and then
stop oxios-init too. Under any other name, tini's: signals to the child.

tini options (environment in brackets):
  -h, --help                 show this help and exit
  -V, --version              show the version and exit
  -s, --subreaper            register as a child subreaper [TINI_SUBREAPER, OXIOS_INIT_SUBREAPER]
  -g, --kill-process-group   forward signals to the child's process group [TINI_KILL_PROCESS_GROUP, OXIOS_INIT_KILL_PROCESS_GROUP]
  -e, --remap-exit CODE      report exit code CODE as 0 (repeatable) [OXIOS_INIT_REMAP_EXIT, comma-separated]
  -p, --parent-death-signal SIGNAL
                             signal oxios-init receives when its parent dies [OXIOS_INIT_PARENT_DEATH_SIGNAL]
  -v, --verbose              more logging (repeatable) [TINI_VERBOSITY, OXIOS_INIT_VERBOSITY = number]
  -w, --warn-zombies         warn for every zombie reaped [OXIOS_INIT_WARN_ZOMBIES]

dumb-init options:
  -c, --single-child         no session of its own: signals to the child only [DUMB_INIT_SETSID=0]
  --setsid                   dumb-init's session mode under any name [DUMB_INIT_SETSID=1, OXIOS_INIT_SETSID]
  -v, --verbose              invoked as dumb-init: debug logging at once [DUMB_INIT_DEBUG=1]
  -r, --rewrite FROM:TO      see below

oxios options:
  --grace D                  time from the stop signal to SIGKILL (none: forward it and wait, as tini does) [OXIOS_INIT_GRACE]
  -r, --rewrite FROM:TO      forward signal FROM as TO, TO=0 drops it (repeatable) [OXIOS_INIT_REWRITE, comma-separated]
  --restart POLICY           never|on-failure|always (never) [OXIOS_INIT_RESTART]
  --backoff-initial D        first restart delay (1s) [OXIOS_INIT_BACKOFF_INITIAL]
  --backoff-max D            longest restart delay (60s) [OXIOS_INIT_BACKOFF_MAX]
  --backoff-reset D          a run this long resets the delay (10m) [OXIOS_INIT_BACKOFF_RESET]
  --lock PATH                instance lock held for oxios-init's life [OXIOS_INIT_LOCK]
  --stale PATH               stale PID/lock file or socket to remove (repeatable) [OXIOS_INIT_STALE, one a line]
  --log-format text|json     log format on stderr (text) [OXIOS_INIT_LOG_FORMAT]

health options (see the health package; each has OXIOS_INIT_<NAME> with '-' as '_'):
  --startup PROBE, --readiness PROBE, --liveness PROBE   tcp://, http://, exec:, listen://
                             (https:// too in builds without -tags oxios_nohttps);
                             startup and readiness also notify:// (READY=1 on the
                             NOTIFY_SOCKET oxios-init gives the daemon) and
                             notify+PROBE (READY=1, then PROBE confirms it)
  --<kind>-initial-delay D, --<kind>-period D, --<kind>-timeout D,
  --<kind>-success-threshold N, --<kind>-failure-threshold N
  --health-listen ADDR       serve /livez /readyz /startupz /status /metrics (HOST:PORT or unix:/path)
  --ready-file PATH          file that exists exactly while the daemon is ready

Exit code: the child's; 128+N when it died of signal N; 127 when CMD is not
found, 126 when it cannot be executed; then -e remapping.

Signals: all are forwarded except SIGCHLD, SIGPIPE (indistinguishable
from oxios-init's own broken-pipe writes), SIGPROF (the Go runtime's
profiler keeps it) and 32-34 (SIGRTMIN: reserved, Go cannot catch them).
Not PID 1, oxios-init ignores SIGRTMIN so that it is not ended by it; the
child gets it at its default action. Of the signals blocked or ignored
when oxios-init starts, only some reach the child so: see docs/pid1.md.
`

type options struct {
	help, version bool
	dumbInit      bool // invoked as dumb-init: its defaults and its -v
	setsid        int  // -1 off (-c), 1 on (--setsid), 0 the personality's default
	subreaper     bool
	verbosity     int
	pdeathsig     syscall.Signal
	lock          string
	stale         []string
	logFormat     string
	sup           supervisor.Config
	health        health.Config
}

// healthPrefixes are the option names handed to health.Config.Set.
var healthPrefixes = []string{"startup", "readiness", "liveness", "health-listen", "ready-file"}

func isHealthName(name string) bool {
	for _, p := range healthPrefixes {
		if name == p || strings.HasPrefix(name, p+"-") {
			return true
		}
	}
	return false
}

// dumbInitName is the name (argv[0]'s base) that selects dumb-init's
// semantics.
const dumbInitName = "dumb-init"

// parse reads the environment first, then the flags (flags win; list
// options add to the environment's list). argv0 is the name oxios-init
// was invoked as.
func parse(argv0 string, args, env []string) (*options, error) {
	o := &options{verbosity: 1, logFormat: "text", health: health.DefaultConfig()}
	o.dumbInit = filepath.Base(argv0) == dumbInitName
	o.sup.Remap = map[int]bool{}
	o.sup.Rewrite = map[syscall.Signal]syscall.Signal{}
	if err := o.fromEnv(env); err != nil {
		return nil, err
	}
	cmd, err := o.fromArgs(args)
	if err != nil {
		return nil, err
	}
	if o.help || o.version {
		return o, nil
	}
	if len(cmd) == 0 {
		return nil, fmt.Errorf("no command given: oxios-init [options] -- CMD [ARGS...]")
	}
	o.sup.Command = cmd
	o.session()
	return o, nil
}

// session turns the personality and -c/--setsid into the supervisor's
// Session, as dumb-init does: in session mode, signals go to the child's
// process group, and SIGTSTP, SIGTTIN and SIGTTOU become SIGSTOP unless
// -r says otherwise, because the child's new session has no job control of
// its own to stop it on them (its process group is orphaned).
func (o *options) session() {
	on := o.dumbInit
	if o.setsid != 0 {
		on = o.setsid > 0
	}
	o.sup.Session.Setsid = on
	o.sup.Session.SuspendSelf = o.dumbInit
	if !on {
		// dumb-init -c is transparent: the child stays in its group. An
		// explicit -g needs the child's own group, as under tini.
		o.sup.Session.SharedGroup = o.dumbInit && !o.sup.KillGroup
		return
	}
	o.sup.KillGroup = true
	for _, sig := range []syscall.Signal{syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU} {
		if _, ok := o.sup.Rewrite[sig]; !ok {
			o.sup.Rewrite[sig] = syscall.SIGSTOP
		}
	}
}

// verbose is -v: one level more under tini's name, debugging at once as
// dumb-init's single -v.
func (o *options) verbose() {
	if o.dumbInit {
		o.verbosity = max(o.verbosity, 3)
		return
	}
	o.verbosity++
}

func (o *options) fromEnv(env []string) error {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "TINI_SUBREAPER":
			o.subreaper = true // tini: set at all means on
			continue
		case "TINI_KILL_PROCESS_GROUP":
			o.sup.KillGroup = true
			continue
		case "TINI_VERBOSITY":
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("TINI_VERBOSITY=%q: want a number", v)
			}
			o.verbosity = n
			continue
		case "DUMB_INIT_SETSID":
			// dumb-init reads only "0"; "1" also switches session mode
			// on under the other names. Any other value changes nothing.
			switch v {
			case "0":
				o.setsid = -1
			case "1":
				o.setsid = 1
			}
			continue
		case "DUMB_INIT_DEBUG":
			if v == "1" { // dumb-init's test, exactly
				o.verbosity = max(o.verbosity, 3)
			}
			continue
		}
		name, ok := contract.OptionName(k) // the host spells them the same way
		if !ok {
			continue
		}
		if err := o.set(name, v, true); err != nil {
			return fmt.Errorf("environment %s: %w", k, err)
		}
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", v)
}

func splitList(v, sep string) []string {
	var out []string
	for _, p := range strings.Split(v, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// set applies one long option. fromEnv selects list syntax (a variable
// carries several values).
func (o *options) set(name, v string, fromEnv bool) error {
	var err error
	dur := func(dst *time.Duration) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration like 10s", v)
		}
		*dst = d
		return nil
	}
	switch name {
	case "subreaper":
		o.subreaper, err = parseBool(v)
	case "kill-process-group":
		o.sup.KillGroup, err = parseBool(v)
	case "warn-zombies":
		o.sup.WarnOnReap, err = parseBool(v)
	case "setsid":
		var on bool
		if on, err = parseBool(v); err == nil {
			o.setsid = map[bool]int{true: 1, false: -1}[on]
		}
	case "verbosity":
		o.verbosity, err = strconv.Atoi(v)
	case "remap-exit":
		list := []string{v}
		if fromEnv {
			list = splitList(v, ",")
		}
		for _, c := range list {
			n, e := strconv.Atoi(c)
			if e != nil || n < 0 || n > 255 {
				return fmt.Errorf("exit code %q: want 0..255", c)
			}
			o.sup.Remap[n] = true
		}
	case "parent-death-signal":
		o.pdeathsig, err = supervisor.ParseSignal(v, false)
	case "grace":
		err = dur(&o.sup.Grace)
		if err == nil && o.sup.Grace == 0 {
			o.sup.Grace = time.Nanosecond // 0 means KILL at once
		}
	case "rewrite":
		list := []string{v}
		if fromEnv {
			list = splitList(v, ",")
		}
		for _, r := range list {
			from, to, e := supervisor.ParseRewrite(r)
			if e != nil {
				return e
			}
			o.sup.Rewrite[from] = to
		}
	case "restart":
		o.sup.Restart, err = supervisor.ParsePolicy(v)
	case "backoff-initial":
		err = dur(&o.sup.BackoffInitial)
	case "backoff-max":
		err = dur(&o.sup.BackoffMax)
	case "backoff-reset":
		err = dur(&o.sup.BackoffReset)
	case "lock":
		o.lock = v
	case "stale":
		if fromEnv {
			// One path a line: ':' may be part of a path.
			for _, p := range strings.Split(v, "\n") {
				if p != "" {
					o.stale = append(o.stale, p)
				}
			}
		} else {
			o.stale = append(o.stale, v)
		}
	case "log-format":
		if v != "text" && v != "json" {
			return fmt.Errorf("log format %q: want text or json", v)
		}
		o.logFormat = v
	default:
		if !isHealthName(name) {
			return fmt.Errorf("unknown option %q", name)
		}
		known, herr := o.health.Set(name, v)
		if herr != nil {
			return herr
		}
		if !known {
			return fmt.Errorf("unknown option %q", name)
		}
	}
	return err
}

// boolLong are the long options that take no value.
var boolLong = map[string]bool{"help": true, "version": true, "subreaper": true, "kill-process-group": true, "warn-zombies": true, "verbose": true, "single-child": true, "setsid": true}

// fromArgs reads options up to "--" or the first argument that is not an
// option (CMD), and returns the command.
func (o *options) fromArgs(args []string) ([]string, error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args[i+1:], nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			if boolLong[name] {
				if hasVal {
					return nil, fmt.Errorf("option --%s takes no value", name)
				}
				switch name {
				case "help":
					o.help = true
				case "version":
					o.version = true
				case "verbose":
					o.verbose()
				case "single-child":
					o.setsid = -1
				default:
					if err := o.set(name, "true", false); err != nil {
						return nil, fmt.Errorf("--%s: %w", name, err)
					}
				}
				continue
			}
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("option --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			if err := o.set(name, val, false); err != nil {
				return nil, fmt.Errorf("--%s: %w", name, err)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// Short options, combinable as in getopt: -vvv, -sg, -e2.
			for j := 1; j < len(a); j++ {
				c := a[j]
				switch c {
				case 'h':
					o.help = true
				case 's':
					o.subreaper = true
				case 'g':
					o.sup.KillGroup = true
				case 'v':
					o.verbose()
				case 'V':
					o.version = true
				case 'c':
					o.setsid = -1
				case 'w':
					o.sup.WarnOnReap = true
				case 'l':
					// tini's -l (license): nothing to show, accepted.
				case 'e', 'p', 'r':
					val := a[j+1:]
					if val == "" {
						if i+1 >= len(args) {
							return nil, fmt.Errorf("option -%c needs a value", c)
						}
						i++
						val = args[i]
					}
					name := map[byte]string{'e': "remap-exit", 'p': "parent-death-signal", 'r': "rewrite"}[c]
					if err := o.set(name, val, false); err != nil {
						return nil, fmt.Errorf("-%c: %w", c, err)
					}
					j = len(a)
				default:
					return nil, fmt.Errorf("unknown option -%c", c)
				}
			}
		default:
			// tini: the first non-option is CMD, the rest belongs to it.
			return args[i:], nil
		}
	}
	return nil, nil
}
