// Command attacker is the hostile container of the gauntlet's issue-11
// rows: a static program run inside the task as the daemon's uid (by a
// task exec, or as the daemon itself), attacking the host through what
// the container shares with it. Each mode prints one line per attempt,
// "ok WHAT" or "refused WHAT: ERROR", for the test to log.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	runDir    = "/run/oxios"
	notifyDir = "/run/oxios-notify"
	dataDir   = "/data"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attacker MODE [ARGS]")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "plant":
		plant(args[0])
	case "lockfifo":
		replace(filepath.Join(dataDir, "oxios.lock"), func(p string) error { return syscall.Mkfifo(p, 0o644) })
	case "locklink":
		replace(filepath.Join(dataDir, "oxios.lock"), func(p string) error { return os.Symlink(args[0], p) })
	case "swapnotify":
		swapNotify(args[0])
	case "fill":
		fill()
	case "fakehealth":
		fakeHealth()
	case "linkhealth":
		replace(filepath.Join(runDir, "health.sock"), func(p string) error { return os.Symlink(args[0], p) })
	case "fakeready":
		fakeReady(args[0])
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func report(what string, err error) {
	if err != nil {
		fmt.Printf("refused %s: %v\n", what, err)
		return
	}
	fmt.Printf("ok %s\n", what)
}

// replace puts mk(path)'s result where path is.
func replace(path string, mk func(string) error) {
	os.Remove(path)
	report("replace "+path, mk(path))
}

// plant leaves links to the host's victim file (a host path: the host
// would resolve them), a FIFO and a /dev/zero link wherever the host used
// to read or write, in the shared dir and in the notify dir.
func plant(victim string) {
	for _, dir := range []string{runDir, notifyDir} {
		for _, name := range []string{"log-error.tmp", "notify.sock"} {
			p := filepath.Join(dir, name)
			replace(p, func(p string) error { return os.Symlink(victim, p) })
		}
		replace(filepath.Join(dir, "log-error"), func(p string) error { return syscall.Mkfifo(p, 0o644) })
		replace(filepath.Join(dir, "zero"), func(p string) error { return os.Symlink("/dev/zero", p) })
	}
	report("write "+notifyDir+"/x", os.WriteFile(filepath.Join(notifyDir, "x"), []byte("x"), 0o644))
}

// swapNotify tries, for 3 s, to swap the host's notify socket for a link
// to the victim: the host binds and chmods it while it adopts a task.
func swapNotify(victim string) {
	p := filepath.Join(notifyDir, "notify.sock")
	var tries, done int
	var last error
	for t0 := time.Now(); time.Since(t0) < 3*time.Second; tries++ {
		os.Remove(p)
		if err := os.Symlink(victim, p); err != nil {
			last = err
		} else {
			done++
		}
		time.Sleep(100 * time.Microsecond)
	}
	fmt.Printf("swapnotify: %d tries, %d swaps, last error %v\n", tries, done, last)
}

// fill writes into the shared run dir until the filesystem says no.
func fill() {
	f, err := os.Create(filepath.Join(runDir, "fill"))
	if err != nil {
		report("create fill", err)
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for n < 256<<20 {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			fmt.Printf("fill: %d bytes, then %v\n", n, err)
			return
		}
	}
	fmt.Printf("fill: %d bytes, no error\n", n)
}

// fakeHealth replaces oxios-init's health socket with a server that
// answers 200 and then streams JSON forever.
func fakeHealth() {
	p := filepath.Join(runDir, "health.sock")
	os.Remove(p)
	l, err := net.Listen("unix", p)
	if err != nil {
		report("listen "+p, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	chunk := []byte(`{"ready":true,"child":{"restarts":1000000,"state":"` + strings.Repeat("x", 60<<10) + `"`)
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
}

// fakeReady is the daemon of row 7: it answers 503 on every path, writes
// oxios-init's ready file and sends READY=1 (with a guessed token) to the
// host's notify socket, again and again.
func fakeReady(port string) {
	go http.ListenAndServe("127.0.0.1:"+port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	}))
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		sock = filepath.Join(notifyDir, "notify.sock")
	}
	fmt.Printf("token in my environment: %q\n", os.Getenv("OXIOS_INIT_NOTIFY_TOKEN"))
	environ, err := os.ReadFile("/proc/1/environ")
	report(fmt.Sprintf("read /proc/1/environ (%d bytes, token seen %v)", len(environ), strings.Contains(string(environ), "NOTIFY_TOKEN")), err)
	for i := 0; ; i++ {
		os.WriteFile(filepath.Join(runDir, "ready"), []byte("1\n"), 0o644)
		c, err := net.Dial("unixgram", sock)
		if err == nil {
			c.Write([]byte("READY=1\nOXIOS_TOKEN=" + strings.Repeat("0", 32)))
			c.Write([]byte("READY=1"))
			c.Close()
		}
		if i == 0 {
			report("send READY=1 to "+sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
