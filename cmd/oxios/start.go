package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/a7garden/oxios/runtime/task"
)

func startCommand() *command {
	return &command{
		name: "start", aliases: []string{"serve"}, synopsis: "[--foreground]",
		summary: "start the daemon; exits once it is ready",
		help: `Start the daemon as a containerd task (importing or pulling the image
when it is absent) and wait until it is ready: oxios-init's readiness,
confirmed by a connect to its port. A running task is adopted, not
duplicated. On a terminal, a start still waiting after a second says what
it waits for, once a second, on stderr.

--foreground stays attached, for systemd (Type=notify: READY=1 once ready,
the watchdog fed while live) and launchd: it stops the task on SIGTERM or
SIGINT and exits with the task's code. -v prints how long each step took.`,
		setup: func(fs *flagSet) runFunc {
			var fg bool
			fs.Bool(&fg, "foreground", "", "stay attached (systemd/launchd): sd_notify, stop on SIGTERM/SIGINT, exit with the task's code")
			return noArgs("start", func(e *env) int { return cmdStart(e, fg) })
		},
	}
}

func cmdStart(e *env, fg bool) int {
	return withRuntime(e, exitFail, func(c *conn) int {
		recoverFirst(e, c)
		if fg {
			return foreground(e, c)
		}
		st, err := watchStart(e.stderr, c, c.r.Start)
		if err != nil {
			report(e.stderr, err)
			return startFailCode(err)
		}
		printStarted(e.stdout, e.stderr, st)
		if e.common.verbose {
			printSteps(e.stderr, st.Steps)
		}
		return exitOK
	})
}

// watchStart runs start and, on a terminal, says what it waits for once
// a second from the first second on; in a pipe it says nothing.
func watchStart(w io.Writer, c *conn, start func(context.Context) (*task.Started, error)) (*task.Started, error) {
	if !isTerminal(w) {
		return start(context.Background())
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		announceWaiting(w, c, time.Now(), done)
	}()
	st, err := start(context.Background())
	close(done)
	wg.Wait()
	return st, err
}

func announceWaiting(w io.Writer, c *conn, t0 time.Time, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			fmt.Fprintf(w, "oxios: %s (%.1f s; container.start_timeout %v)\n",
				printable(c.r.Waiting()), now.Sub(t0).Seconds(), c.cfg.Container.StartTimeout.D())
		}
	}
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
func foreground(e *env, c *conn) int {
	stdout, stderr := e.stdout, e.stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	wd, _ := daemon.SdWatchdogEnabled(false)
	notify := func(state string) { daemon.SdNotify(false, state) }
	o := task.ForegroundOptions{Notify: notify, Watchdog: wd, OnReady: func(st *task.Started) {
		printStarted(stdout, stderr, st)
	}}
	followUpgrades(&o, e, c)
	_, code, err := c.r.Foreground(ctx, o)
	if err != nil {
		report(stderr, err)
		// Foreground reports a failed start as 1: the unit must see 78.
		if code == 0 || errors.Is(err, task.ErrDataDirAccess) {
			code = startFailCode(err)
		}
	}
	return code
}

// startFailCode is the exit code of a failed start.
func startFailCode(err error) int {
	if errors.Is(err, task.ErrDataDirAccess) {
		return exitNoRestart
	}
	return exitFail
}

func restartCommand() *command {
	return &command{
		name: "restart", summary: "stop, then start",
		help: "Stop the daemon (as 'oxios stop' does), then start it (as 'oxios start' does).",
		setup: func(fs *flagSet) runFunc {
			return noArgs("restart", cmdRestart)
		},
	}
}

func cmdRestart(e *env) int {
	return withRuntime(e, exitFail, func(c *conn) int {
		recoverFirst(e, c)
		st, err := watchStart(e.stderr, c, c.r.Restart)
		if err != nil {
			report(e.stderr, err)
			return startFailCode(err)
		}
		printStarted(e.stdout, e.stderr, st)
		return exitOK
	})
}

func stopCommand() *command {
	return &command{
		name: "stop", summary: "stop it (SIGTERM, grace, SIGKILL) and remove the task",
		help: `Send SIGTERM (oxios-init rewrites it to SIGINT for the daemon, which drains
on SIGINT), wait up to container.stop_timeout, then SIGKILL every process of
the task, and remove the task and container. Exit 0 also when it was not
running.`,
		setup: func(fs *flagSet) runFunc {
			return noArgs("stop", cmdStop)
		},
	}
}

func cmdStop(e *env) int {
	return withRuntime(e, exitFail, func(c *conn) int {
		stopAfterUpgrade(e.stderr, c.cfg)
		res, err := c.r.Stop(context.Background())
		if err != nil {
			report(e.stderr, err)
			return exitFail
		}
		if !res.WasRunning {
			fmt.Fprintln(e.stdout, "oxios is not running")
			return exitOK
		}
		fmt.Fprintf(e.stdout, "oxios stopped (exit code %d, %d ms)\n", res.ExitCode, res.Took.Milliseconds())
		return exitOK
	})
}
