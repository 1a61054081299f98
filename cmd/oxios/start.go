package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/a7garden/oxios/runtime/task"
)

func cmdStart(c commonFlags, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("start", stderr)
	fg := fs.Bool("foreground", false, "stay attached (for systemd/launchd): sd_notify, stop on SIGTERM/SIGINT, exit with the task's code")
	verbose := fs.Bool("v", false, "print how long each start step took (stderr)")
	if fs.Parse(args) != nil {
		return 2
	}
	return withRuntime(c, stderr, 1, func(r *task.Runtime) int {
		if *fg {
			return foreground(r, stdout, stderr)
		}
		st, err := r.Start(context.Background())
		if err != nil {
			report(stderr, err)
			return 1
		}
		printStarted(stdout, stderr, st)
		if *verbose {
			printSteps(stderr, st.Steps)
		}
		return 0
	})
}

func printSteps(w io.Writer, steps []task.Step) {
	for _, s := range steps {
		fmt.Fprintf(w, "oxios: step %-10s %6.1f ms\n", s.Name, float64(s.Took.Microseconds())/1000)
	}
}

func printStarted(stdout, stderr io.Writer, st *task.Started) {
	if st.Cleaned != "" {
		fmt.Fprintf(stderr, "oxios: %s\n", st.Cleaned)
	}
	if st.Adopted {
		fmt.Fprintf(stdout, "oxios is already running (PID %d) and ready\n  URL:  %s\n  Logs: %s\n", st.PID, st.URL, st.LogPath)
		return
	}
	fmt.Fprintf(stdout, "oxios started (PID %d)\n  Logs: %s\n  URL:  %s\n  Status: ready (%d ms)\n",
		st.PID, st.LogPath, st.URL, st.Ready.Milliseconds())
}

// foreground: systemd's Type=notify contract. SIGTERM/SIGINT cancel the
// context; Foreground then stops the task and returns its exit code.
func foreground(r *task.Runtime, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	wd, _ := daemon.SdWatchdogEnabled(false)
	notify := func(state string) { daemon.SdNotify(false, state) }
	_, code, err := r.Foreground(ctx, task.ForegroundOptions{Notify: notify, Watchdog: wd, OnReady: func(st *task.Started) {
		printStarted(stdout, stderr, st)
	}})
	if err != nil {
		report(stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func cmdRestart(c commonFlags, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("restart", stderr)
	if fs.Parse(args) != nil {
		return 2
	}
	return withRuntime(c, stderr, 1, func(r *task.Runtime) int {
		st, err := r.Restart(context.Background())
		if err != nil {
			report(stderr, err)
			return 1
		}
		printStarted(stdout, stderr, st)
		return 0
	})
}

func cmdStop(c commonFlags, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("stop", stderr)
	if fs.Parse(args) != nil {
		return 2
	}
	return withRuntime(c, stderr, 1, func(r *task.Runtime) int {
		res, err := r.Stop(context.Background())
		if err != nil {
			report(stderr, err)
			return 1
		}
		if !res.WasRunning {
			fmt.Fprintln(stdout, "oxios is not running")
			return 0
		}
		fmt.Fprintf(stdout, "oxios stopped (exit code %d, %d ms)\n", res.ExitCode, res.Took.Milliseconds())
		return 0
	})
}
