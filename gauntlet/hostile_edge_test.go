package gauntlet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/health"
	"github.com/a7garden/oxios/internal/testenv"
)

// Hostile-container rows 8-12 of issue 11: the health endpoint under
// slowloris, an image that runs as root, a config others can write,
// terminal escapes in the log, stale_files outside the data mount.

// editConfig replaces old with new in the scenario's config file.
func (e *env) editConfig(old, new string) {
	e.t.Helper()
	b, err := os.ReadFile(e.cfgPath)
	if err != nil || !bytes.Contains(b, []byte(old)) {
		e.t.Fatalf("config %s: no %q to replace (%v)", e.cfgPath, old, err)
	}
	if err := os.WriteFile(e.cfgPath, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// nothingCreated fails the row if a refused start left anything behind.
func (e *env) nothingCreated(rw *row) {
	e.t.Helper()
	cl, ctx := e.client()
	if l, err := e.countLeaks(cl, ctx); err != nil || !l.zero() {
		rw.errorf(e.t, "the refused start created something: %v %v", l, err)
	}
}

// Row 11.8: 1,000 connections to oxios-init's health endpoint (the unix
// socket in the run dir) that send half a request and hold; /livez still
// answers within 100 ms and nothing restarts.
func TestHostileSlowloris(t *testing.T) {
	rw := scenario(t, "11.8", "slowloris on the health endpoint")
	e := newEnv(t, setup{})
	e.mustStart(rw)
	const n, budget = 1000, 100 * time.Millisecond
	sock := e.healthSocket()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			rw.fail(t, "slowloris connection %d: %v", i+1, err)
		}
		held = append(held, c)
		io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	}
	// The attack in place: connections still in the kernel's accept queue
	// would delay any client behind them, whatever the endpoint does. The
	// endpoint closes connection k when it accepts k+MaxConns, so the
	// close of the last one it must evict says it has accepted them all.
	last := held[n-1-health.MaxConns]
	last.SetReadDeadline(time.Now().Add(20 * time.Second))
	// Closed is EOF, or a reset when the endpoint had not yet read the
	// half request (a unix socket closed with unread data resets its peer).
	if k, err := last.Read(make([]byte, 1)); k != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		rw.fail(t, "slowloris connection %d of %d not closed by the endpoint at its cap of %d: %d bytes, %v", n-health.MaxConns, n, health.MaxConns, k, err)
	}
	var worst time.Duration
	var all []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		line, err := livez(sock)
		took := time.Since(t0)
		if err != nil || line != "HTTP/1.1 200 OK" {
			rw.fail(t, "/livez %d with %d slow clients held: %q, %v after %v", i, n, line, err, took)
		}
		worst = max(worst, took)
		all = append(all, took.Round(10*time.Microsecond))
	}
	t.Logf("/livez latencies in order: %v", all)
	if worst > budget {
		rw.errorf(t, "slowest /livez of 20 with %d slow clients held: %v, want <= %v", n, worst, budget)
	}
	st, r := e.status()
	if r.code != 0 || !st.Ready || st.Restarts != 0 {
		rw.errorf(t, "after the attack: ready %v, restarts %d: %s", st.Ready, st.Restarts, r)
	}
	rw.note("%d slow clients held: slowest /livez of 20 %v; daemon ready, 0 restarts", n, worst.Round(10*time.Microsecond))
	rw.lost("nothing")
}

func livez(sock string) (string, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	b := make([]byte, 64)
	k, err := io.ReadAtLeast(c, b, len("HTTP/1.1 200 OK\r\n"))
	line, _, _ := strings.Cut(string(b[:k]), "\r\n")
	return line, err
}

// Row 11.9: the real image with USER 0:0 is refused by `oxios start`,
// naming the image and container.user; nothing is created.
func TestHostileRootImage(t *testing.T) {
	rw := scenario(t, "11.9", "image with USER 0")
	e := newEnv(t, setup{})
	ref := "localhost/oxios:latest"
	variant := testenv.ImageVariant(t, testenv.ImageArchive(t), e.dir, ref, func(c map[string]any) { c["User"] = "0:0" })
	if err := e.writeConfig(variant); err != nil {
		t.Fatal(err)
	}
	r := e.oxios(60*time.Second, "start")
	switch {
	case r.code == 0:
		rw.fail(t, "start ran an image whose user is 0: %s", r)
	case !strings.Contains(r.stderr, ref) || !strings.Contains(r.stderr, "container.user"):
		rw.errorf(t, "the refusal does not name the image and container.user: %s", r)
	default:
		rw.note("refused: %q", strings.TrimSpace(lastLine(r.stderr)))
	}
	e.nothingCreated(rw)
	rw.lost("nothing")
}

// Row 11.10: a config that another user can write (group-writable, or
// owned by a user the test creates) is refused by `oxios start` as root,
// naming the file and the fix; put back, it is read again.
func TestHostileWritableConfig(t *testing.T) {
	rw := scenario(t, "11.10", "config others can write")
	e := newEnv(t, setup{})
	name, uid, gid := testenv.TempUser(t)
	for what, c := range map[string]struct {
		change func() error
		want   string
	}{
		"mode 0664":        {func() error { return os.Chmod(e.cfgPath, 0o664) }, "chmod go-w " + e.cfgPath},
		"owned by " + name: {func() error { return os.Chown(e.cfgPath, uid, gid) }, "chown root " + e.cfgPath},
	} {
		if err := c.change(); err != nil {
			t.Fatal(err)
		}
		r := e.oxios(60*time.Second, "start")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			rw.errorf(t, "config %s: want a refusal saying %q: %s", what, c.want, r)
		} else {
			rw.note("%s refused", what)
		}
		os.Chmod(e.cfgPath, 0o644)
		os.Chown(e.cfgPath, 0, 0)
	}
	e.nothingCreated(rw)
	if _, r := e.status(); r.code != 3 {
		rw.errorf(t, "root-owned 0644 config: status should read it and say stopped (3): %s", r)
	}
	rw.lost("nothing")
}

// Row 11.11: a daemon that writes terminal control sequences. The
// failed-start log tail is escaped; `oxios logs` on a terminal (a pty) is
// escaped; --raw and a pipe get the bytes as written.
func TestHostileTerminalEscapes(t *testing.T) {
	rw := scenario(t, "11.11", "escape sequences in the log")
	e := newEnv(t, setup{})
	// The data dir as oxios would make it, owned by the image's user
	// (65532), who must take the instance lock in it.
	if err := os.MkdirAll(e.dataDir, 0o750); err != nil || os.Chown(e.dataDir, 65532, 65532) != nil {
		t.Fatalf("data dir %s: %v", e.dataDir, err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(e.dataDir, "escapes"), "./testdata/escapes")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the hostile daemon: %v\n%s", err, out)
	}
	e.editConfig("[container]\n", "[container]\nargs = [\"/data/escapes\"]\n")
	const escaped = `\x1b]0;pwned\x07 \x1b[2J\x1b[Hcleared \rhidden \x9b31m c1`
	r := e.oxios(60*time.Second, "start")
	if r.code == 0 || !strings.Contains(r.stderr, escaped) || hasControl(r.stderr) {
		rw.errorf(t, "failed start: want the tail escaped (%s): %s", escaped, r)
	}
	onTTY, err := e.logsOnPTY()
	if err != nil {
		rw.fail(t, "oxios logs on a pty: %v", err)
	}
	if !strings.Contains(onTTY, escaped) || hasControl(onTTY) {
		rw.errorf(t, "oxios logs on a terminal: want %s and no control characters: %q", escaped, onTTY)
	}
	raw, err := e.logsOnPTY("--raw")
	if err != nil || !strings.Contains(raw, "\x1b]0;pwned\x07") {
		rw.errorf(t, "oxios logs --raw on a terminal: want the bytes as written: %q, %v", raw, err)
	}
	piped := e.oxios(30*time.Second, "logs")
	if !strings.Contains(piped.stdout, "\x1b]0;pwned\x07") {
		rw.errorf(t, "oxios logs into a pipe: want the bytes as written: %q", piped.stdout)
	}
	rw.note("start's tail and `logs` on a pty escaped; --raw and a pipe raw")
	rw.lost("nothing")
}

// hasControl: a control character other than newline and tab.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return r < ' ' && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f
	}) >= 0 || strings.Contains(s, "\x9b")
}

// logsOnPTY runs `oxios logs ARGS` with stdout on a pseudo-terminal (no
// output processing, so what arrives is what oxios wrote) and returns it.
func (e *env) logsOnPTY(args ...string) (string, error) {
	master, slave, err := openPTY()
	if err != nil {
		return "", err
	}
	defer master.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(master) // EIO once the last slave fd is closed
		got <- b
	}()
	cmd := e.command(e.t.Context(), append([]string{"logs"}, args...)...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &errb
	err = cmd.Run()
	slave.Close()
	if err != nil {
		return "", fmt.Errorf("oxios logs %v: %w: %s", args, err, errb.String())
	}
	select {
	case b := <-got:
		return string(b), nil
	case <-time.After(10 * time.Second):
		return "", errors.New("the pty did not report EOF after oxios exited")
	}
}

// openPTY opens a pseudo-terminal pair with output processing off
// (posix_openpt, unlockpt, ptsname by hand: no pty module needed).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err == nil {
		tio.Oflag &^= unix.OPOST
		err = unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio)
	}
	if err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("termios: %w", err)
	}
	return master, slave, nil
}

// Row 11.12: init.stale_files that leaves the data mount ("../") is
// refused by `oxios start`, naming the key and the value.
func TestHostileStaleOutsideData(t *testing.T) {
	rw := scenario(t, "11.12", "stale_files outside the data mount")
	e := newEnv(t, setup{})
	const bad = "/data/../etc/passwd"
	e.editConfig("[init]\n", "[init]\nstale_files = [\""+bad+"\"]\n")
	r := e.oxios(60*time.Second, "start")
	if r.code == 0 || !strings.Contains(r.stderr, "init.stale_files") || !strings.Contains(r.stderr, bad) {
		rw.errorf(t, "stale_files = [%q]: want a refusal naming the key and the value: %s", bad, r)
	} else {
		rw.note("refused: %q", strings.TrimSpace(lastLine(r.stderr)))
	}
	e.nothingCreated(rw)
	rw.lost("nothing")
}
