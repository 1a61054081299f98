package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// demo is one run of the daemon: its options, its state and what it started.
type demo struct {
	opts     options
	log      *logrus.Logger
	started  time.Time
	sigs     chan os.Signal
	st       *status
	srv      *server
	hb       *heartbeat
	orphans  []int
	serveErr chan error
	stopHB   chan struct{}

	notifiedReady bool // READY=1 sent (OXIOS_DEMO_SD_NOTIFY)
}

func newDemo(opts options, log *logrus.Logger, started time.Time, sigs chan os.Signal) *demo {
	return &demo{
		opts: opts, log: log, started: started, sigs: sigs,
		st:       newStatus(),
		serveErr: make(chan error, 1),
		stopHB:   make(chan struct{}),
	}
}

// run is the event loop: start-up steps, then signals and timers until the
// process should end. It returns the exit code (or does not return at all
// when SIGTERM=exit kills the process with its own signal).
func (d *demo) run() int {
	d.logStart()
	exitC := d.exitTimer()
	if err := d.openDataDir(); err != nil {
		d.log.WithError(err).Error("cannot write the heartbeat file")
		return 1
	}
	defer close(d.stopHB)
	d.st.onChange = d.reportPhase
	if err := d.leaveOrphans(); err != nil {
		d.log.WithError(err).Error("cannot leave orphans")
		return d.finish(1)
	}

	listenC := time.After(d.opts.ListenDelay)
	if d.opts.ListenDelay > 0 {
		d.log.WithField("delay", d.opts.ListenDelay).Info("waiting before listening (" + envListenDelay + ")")
	}
	var (
		stopSig    os.Signal
		stopDelayC <-chan time.Time
		drainedC   <-chan error
	)
	for {
		select {
		case <-listenC:
			listenC = nil
			if stopSig != nil {
				continue // stopped before it ever listened
			}
			if d.exitDue() {
				// select picks at random among ready cases: without this,
				// EXIT_AFTER=0s would sometimes listen (and be ready) first,
				// and a "crashes at start" image would not crash at start.
				continue
			}
			if err := d.startServing(); err != nil {
				d.log.WithError(err).Error("cannot serve")
				return d.finish(1)
			}

		case sig := <-d.sigs:
			if sig == syscall.SIGTERM && d.opts.Sigterm == sigtermIgnore {
				d.log.WithField("signal", "SIGTERM").Warn("ignoring SIGTERM (" + envSigterm + "=ignore)")
				continue
			}
			if stopSig != nil {
				if sig == syscall.SIGTERM && d.opts.Sigterm == sigtermExit {
					return d.die(syscall.SIGTERM)
				}
				d.log.WithField("signal", sigName(sig)).Info("already stopping")
				continue
			}
			stopSig = sig
			d.beginStop(sig)
			stopDelayC = time.After(d.opts.StopDelay)

		case <-stopDelayC:
			stopDelayC = nil
			if stopSig == syscall.SIGTERM && d.opts.Sigterm == sigtermExit {
				return d.die(syscall.SIGTERM)
			}
			drainedC = d.drain()

		case err := <-drainedC:
			if err != nil {
				d.log.WithError(err).Error("drain failed")
				return d.finish(1)
			}
			d.log.Info("drained, exiting")
			return d.finish(0)

		case <-exitC:
			d.log.WithFields(logrus.Fields{"after": d.opts.ExitAfter, "code": d.opts.ExitCode}).
				Info("exiting (" + envExitAfter + ")")
			return d.finish(d.opts.ExitCode)

		case err := <-d.serveErr:
			d.log.WithError(err).Error("HTTP server failed")
			return d.finish(1)
		}
	}
}

func (d *demo) logStart() {
	f := logrus.Fields{
		"version": buildVersion(), "pid": os.Getpid(),
		"listen": d.opts.Listen, "listen_from": d.opts.ListenSource,
		"sigterm": string(d.opts.Sigterm),
	}
	add := func(name string, set bool, v any) {
		if set {
			f[name] = v
		}
	}
	k := d.opts.knobs
	add("listen_delay", k.ListenDelay > 0, k.ListenDelay)
	add("ready_delay", k.ReadyDelay > 0, k.ReadyDelay)
	add("exit_after", k.HasExitAfter, k.ExitAfter)
	add("exit_code", k.HasExitAfter, k.ExitCode)
	add("stop_delay", k.StopDelay > 0, k.StopDelay)
	add("orphans", k.Orphans > 0, k.Orphans)
	add("hang_after", k.HasHangAfter, k.HangAfter)
	add("unready_after", k.HasUnreadyAfter, k.UnreadyAfter)
	add("data_dir", k.DataDir != "", k.DataDir)
	add("sd_notify", k.SdNotify, true)
	d.log.WithFields(f).Info("oxios-demo starting")
	for _, name := range k.Unknown {
		d.log.WithField("variable", name).Warn("unknown OXIOS_DEMO_* variable ignored (misspelt knob?)")
	}
	if k.HasExitCode && !k.HasExitAfter {
		d.log.Warn(envExitCode + " is set but " + envExitAfter + " is not: it has no effect")
	}
}

// exitTimer fires after OXIOS_DEMO_EXIT_AFTER, counted from process start.
func (d *demo) exitTimer() <-chan time.Time {
	if !d.opts.HasExitAfter {
		return nil
	}
	return time.After(time.Until(d.started.Add(d.opts.ExitAfter)))
}

// exitDue reports whether OXIOS_DEMO_EXIT_AFTER has passed: then the exit
// comes before anything else the loop would do.
func (d *demo) exitDue() bool {
	return d.opts.HasExitAfter && !time.Now().Before(d.started.Add(d.opts.ExitAfter))
}

func (d *demo) openDataDir() error {
	if d.opts.DataDir == "" {
		return nil
	}
	host, _ := os.Hostname()
	hb, err := openHeartbeat(d.opts.DataDir, heartbeatState{
		PID: os.Getpid(), Hostname: host, Version: buildVersion(),
		State: "starting", Started: d.started.UTC(),
	}, func(err error) { d.log.WithError(err).Warn("heartbeat write failed") })
	if err != nil {
		return err
	}
	d.hb = hb
	go hb.run(d.stopHB)
	d.log.WithField("file", d.opts.DataDir+"/"+heartbeatName).Info("writing heartbeat")
	return nil
}

func (d *demo) leaveOrphans() error {
	if d.opts.Orphans == 0 {
		return nil
	}
	pids, err := spawnOrphans(d.opts.Orphans)
	d.orphans = pids
	for _, pid := range pids {
		d.log.WithField("orphan_pid", pid).Info("left an orphan behind (" + envOrphans + ")")
	}
	d.hb.set(func(s *heartbeatState) { s.Orphans = pids })
	return err
}

// reportPhase logs every state change and writes it to the heartbeat file.
func (d *demo) reportPhase(phase, addr string) {
	// File first: whoever sees the log line can rely on the file.
	d.hb.set(func(s *heartbeatState) { s.State, s.Listen = phase, addr })
	e := d.log.WithField("state", phase)
	if phase == "listening" {
		e = e.WithField("addr", addr)
	}
	if phase == "ready" && d.srv != nil {
		e = e.WithField("connections_before_ready", d.srv.beforeReady.Load())
	}
	e.Info(phase)
	d.sdNotify(phase, addr)
}

// sdNotify tells NOTIFY_SOCKET (OXIOS_DEMO_SD_NOTIFY=1) that the demo is
// ready, the first time it is, and that it is stopping.
func (d *demo) sdNotify(phase, addr string) {
	if !d.opts.SdNotify {
		return
	}
	var msg string
	switch {
	case phase == "ready" && !d.notifiedReady:
		d.notifiedReady = true
		msg = "READY=1\nSTATUS=serving on " + addr
	case phase == "stopping":
		msg = "STOPPING=1\nSTATUS=stopping"
	default:
		return
	}
	sent, err := sdnotify.SdNotify(false, msg)
	switch {
	case err != nil:
		d.log.WithError(err).Warn("sd_notify failed (" + envSdNotify + ")")
	case !sent:
		d.log.Warn(envSdNotify + "=1 but NOTIFY_SOCKET is not set: nothing sent")
	}
}

// startServing opens the socket, serves, and arms the timers that count
// from this moment: READY_DELAY, UNREADY_AFTER, HANG_AFTER.
func (d *demo) startServing() error {
	host, _ := os.Hostname()
	d.srv = newServer(d.st, procInfo{Hostname: host, PID: os.Getpid(), Version: buildVersion(), Started: d.started},
		func() int { return len(d.orphans) })
	addr, err := d.srv.listen(d.opts.Listen)
	if err != nil {
		return err
	}
	d.st.setListening(addr.String())
	after := func(delay time.Duration, fn func()) {
		if delay == 0 {
			fn()
			return
		}
		time.AfterFunc(delay, fn)
	}
	after(d.opts.ReadyDelay, d.st.markReadyDelayPassed)
	if d.opts.HasUnreadyAfter {
		after(d.opts.UnreadyAfter, d.st.setUnready)
	}
	if d.opts.HasHangAfter {
		after(d.opts.HangAfter, d.st.setHung)
	}
	// Accepting starts only now: with no READY_DELAY the demo is ready
	// before its first accept, so connections_before_ready counts only
	// connections made while it really was not.
	go func() {
		if err := d.srv.serve(); err != nil {
			d.serveErr <- err
		}
	}()
	return nil
}

func (d *demo) beginStop(sig os.Signal) {
	action := "drain"
	if sig == syscall.SIGTERM && d.opts.Sigterm == sigtermExit {
		action = "exit"
	}
	d.log.WithFields(logrus.Fields{"signal": sigName(sig), "action": action, "stop_delay": d.opts.StopDelay}).
		Info("stop signal received")
	d.st.setStopping()
}

// drain stops accepting and waits for in-flight requests, as the real
// daemon does on SIGINT. It has no deadline of its own: bounding it is the
// supervisor's grace period.
func (d *demo) drain() <-chan error {
	c := make(chan error, 1)
	if d.srv == nil {
		c <- nil
		return c
	}
	// Close the socket before saying so: Shutdown would close it too, but
	// in its own goroutine, after the log line.
	d.srv.closeListener()
	d.log.Info("draining: no new connections, waiting for in-flight requests")
	go func() { c <- d.srv.http.Shutdown(context.Background()) }()
	return c
}

// die ends the process by its own signal, without a drain, so that whoever
// waits for it sees "killed by SIGTERM" exactly as with the real daemon.
// It returns 128+sig for main to exit with only where the signal cannot
// kill: in PID 1 of a PID namespace (immune to its own default-action
// signals), or if the kernel has not acted within a second.
func (d *demo) die(sig syscall.Signal) int {
	d.log.WithField("signal", sigName(sig)).Info("exiting on SIGTERM without draining (" + envSigterm + "=exit)")
	d.hb.set(func(s *heartbeatState) { s.State = "killed" })
	code := 128 + int(sig)
	if os.Getpid() == 1 {
		return code
	}
	// Reset: a process started with the signal ignored would survive it.
	signal.Reset(sig)
	_ = syscall.Kill(os.Getpid(), sig)
	time.Sleep(time.Second) // the kernel kills us here; there is no event to wait on
	return code
}

// finish records the final state and returns code for main to exit with.
func (d *demo) finish(code int) int {
	d.hb.set(func(s *heartbeatState) { s.State = "exited" })
	d.log.WithField("code", code).Info("exit")
	return code
}

func sigName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
