// Command child is the process oxios-init (and tini and dumb-init, to
// compare) supervises in the start-up stress test and the compatibility
// tests: it reports where it runs and every signal it receives, one line
// each on stdout, and exits 0 on SIGTERM.
//
// Environment: CHILD_PREFIX names it in its lines ("child"); CHILD_TREE=1
// first starts a grandchild in its process group, `sleep 1000` with every
// signal at its default action, and prints "grandchild ready PID": a
// signal sent to the group is seen in the grandchild's /proc entry at once
// (pending, dying or a zombie, since nobody reaps it), with no ordering of
// outputs to trust. CHILD_PDEATHSIG=1 makes the child die with its parent,
// so that a test that fails against another init leaves nothing behind.
// CHILD_JOB=1 makes it a job-control shell instead (see job).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	if os.Getenv("CHILD_JOB") == "1" {
		job(os.Args[1:])
		return
	}
	prefix := os.Getenv("CHILD_PREFIX")
	if prefix == "" {
		prefix = "child"
	}
	if os.Getenv("CHILD_PDEATHSIG") == "1" {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
			fail(err)
		}
	}
	// Handlers first: "ready" promises that every signal from then on is
	// reported.
	c := make(chan os.Signal, 128)
	signal.Notify(c, catchable()...)
	gc := 0
	if os.Getenv("CHILD_TREE") == "1" {
		gc = grandchild()
	}
	wd, _ := os.Getwd()
	pgid, _ := unix.Getpgid(0)
	sid, _ := unix.Getsid(0)
	fmt.Printf("%s ready %d %d %d %s\n", prefix, os.Getpid(), pgid, sid, wd)
	if gc != 0 {
		fmt.Printf("grandchild ready %d\n", gc)
	}
	for s := range c {
		fmt.Printf("%s sig %d\n", prefix, s.(syscall.Signal))
		if s == syscall.SIGTERM {
			fmt.Printf("%s drained\n", prefix)
			os.Exit(0)
		}
	}
}

// catchable is every signal Go lets a program catch, except SIGCHLD (the
// grandchild's exit) and SIGURG (the Go runtime's own preemption signal).
func catchable() []os.Signal {
	var out []os.Signal
	for n := 1; n <= 64; n++ {
		s := syscall.Signal(n)
		switch {
		case s == syscall.SIGKILL, s == syscall.SIGSTOP, s == syscall.SIGCHLD, s == syscall.SIGURG, s == syscall.SIGPROF:
		case n >= 32 && n <= 34: // reserved by the Go runtime
		default:
			out = append(out, s)
		}
	}
	return out
}

// grandchild starts `sleep 1000`, which dies with the child.
func grandchild() int {
	gc := exec.Command("sleep", "1000")
	gc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := gc.Start(); err != nil {
		fail(err)
	}
	return gc.Process.Pid
}

func fail(err error) {
	fmt.Println("ERR", err)
	os.Exit(1)
}

// job runs argv as a shell with job control runs a foreground job, on
// stdin's terminal with `stty tostop` set: in its own process group, in
// the terminal's foreground. It prints "job exit N" when the job ends, or
// "job stopped" (and kills it) when the job stops instead.
func job(argv []string) {
	tio, err := unix.IoctlGetTermios(0, unix.TCGETS)
	if err != nil {
		fail(err)
	}
	tio.Lflag |= unix.TOSTOP
	if err := unix.IoctlSetTermios(0, unix.TCSETS, tio); err != nil {
		fail(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	// Only now, so that the job does not inherit it: a shell ignores
	// SIGTTOU to take the terminal back.
	signal.Ignore(syscall.SIGTTOU)
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WUNTRACED, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp()); err != nil {
		fail(err)
	}
	if ws.Stopped() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		fmt.Println("job stopped")
		return
	}
	fmt.Println("job exit", ws.ExitStatus())
}
