// Package boottest boots a real systemd (systemd-nspawn) with oxios
// installed by `oxios install`, against a private containerd that the
// script can have killed and restarted, and runs scripts/boot-test.sh in
// it: reboots, a power cut, a containerd outage. See that script for the
// steps.
package boottest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a7garden/oxios/hostsvc"
	"github.com/a7garden/oxios/internal/ctrtest"
	"github.com/a7garden/oxios/internal/testenv"
)

// Directory names the paths below live under. The binary's directory has
// every character the old layer refused or did not escape, so its unit
// runs it through the sh wrapper; the argv-check script's directory has
// those systemd can execute directly (space, %, ;, #, non-ASCII).
const (
	hostileBinDir    = `bin "dq" 'sq' $HOME ${X} %n back\slash é 日本`
	hostileConfigDir = `etc $USER %i "cfg" \t ü`
	directDir        = `argv %n 100% ; #x é`
)

// bootArgs reach the argv-check program through a unit rendered by
// hostsvc.JoinExecLine; it dumps what it received.
var bootArgs = []string{
	"", " ", ";", `\;`, "a b", "  lead", "trail  ", "%", "%%", "%n%i", "$", "$$", "$HOME", "${HOME}", "$1",
	`"`, `'`, `\`, `\\`, `\"`, `"'"`, "\t\n\r\v\f\a\b", "é", "日本語", "😀", "\u00a0", "\u2028", "\x7f", "\x01",
	"\xff\xfe", "\xc3", "line1\nExecStart=/bin/evil", "#comment", "[Service]", "a\\", "-", "@", "!", "+", ":",
}

func tomlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\t", `\t`).Replace(s) + `"`
}

func nulJoin(args []string) []byte {
	var b bytes.Buffer
	for _, a := range args {
		b.WriteString(a)
		b.WriteByte(0)
	}
	return b.Bytes()
}

func write(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func TestBoot(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range []string{"mmdebstrap", "systemd-nspawn", "nsenter", "ctr", "curl", "flock"} {
		testenv.RequireTool(t, tool)
	}
	root := testenv.RepoRoot(t)
	oxios := testenv.Bin(t, "oxios")
	image := testenv.ImageArchive(t)
	ctrd := ctrtest.StartDaemon(t)
	addr := ctrd.Address

	// A short base (not t.TempDir: the test name makes long paths) that is
	// bind-mounted into the machine at the same path.
	work, err := os.MkdirTemp("", "oxios-boot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	os.Chmod(work, 0o755)

	bin := filepath.Join(work, hostileBinDir, "oxios")
	testenv.CopyFile(t, oxios, bin, 0o755)
	cfgPath := filepath.Join(work, hostileConfigDir, "config.toml")
	port := testenv.FreePort(t)
	id := "oxios-boot"
	ns := "oxios-boot"
	logDir := filepath.Join(work, "logs")
	// image.archive is a copy the script may replace (a rebuilt image for
	// the automatic update to find); the variants are what upgrades go to.
	archive := filepath.Join(work, "image", "oxios-image.tar")
	testenv.CopyFile(t, image, archive, 0o644)
	good := testenv.ImageVariant(t, image, filepath.Join(work, "image"), "localhost/oxios:good", func(c map[string]any) {
		c["Labels"] = map[string]any{"oxios.boot-test": "good"}
	})
	bad := testenv.ImageVariant(t, image, filepath.Join(work, "image"), "localhost/oxios:crash", func(c map[string]any) {
		env, _ := c["Env"].([]any)
		c["Env"] = append(env, "OXIOS_DEMO_EXIT_AFTER=0s", "OXIOS_DEMO_EXIT_CODE=3")
	})
	cfg := strings.Join([]string{
		"[containerd]",
		"address = " + tomlString(addr),
		"namespace = " + tomlString(ns),
		"[image]",
		"archive = " + tomlString(archive),
		"[container]",
		"id = " + tomlString(id),
		"port = " + strconv.Itoa(port),
		"data_dir = " + tomlString(filepath.Join(work, "data")),
		"log_dir = " + tomlString(logDir),
		"run_dir = " + tomlString(filepath.Join(work, "run")),
		// The demo listens where oxios waits for it.
		`env = ["OXIOS_DEMO_LISTEN=127.0.0.1:{port}"]`,
		"[upgrade]",
		`verify_for = "2s"`,
		"",
	}, "\n")
	write(t, cfgPath, []byte(cfg), 0o644)

	// What systemd must run for the oxios unit.
	spec := hostsvc.Spec{Binary: bin, Config: cfgPath}
	argv := hostsvc.ExecStartArgv(spec)
	out := filepath.Join(work, "out")
	write(t, filepath.Join(out, "cmdline"), nulJoin(spec.StartArgs()), 0o644)
	// systemd keeps argv as parsed from the unit file, before the exec-time
	// "$$" -> "$" step: that is what systemctl show and D-Bus report.
	stored := make([]string, len(argv))
	for i, a := range argv {
		stored[i] = strings.ReplaceAll(a, "$", "$$")
	}
	stored[0] = argv[0] // the path is never expanded (and never holds a "$")
	show := "path=" + stored[0] + " ; argv[]=" + strings.Join(stored, " ") + " ;"

	// The argv-check unit.
	script := filepath.Join(work, directDir, "dump")
	write(t, script, []byte("#!/bin/sh\nout=\"$(dirname \"$0\")/argv.out\"\n: >\"$out\"\nfor a; do printf '%s' \"$a\" >>\"$out\"; printf '\\000' >>\"$out\"; done\n"), 0o755)
	line, err := hostsvc.JoinExecLine(append([]string{script}, bootArgs...))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(out, "argv-check.service"),
		[]byte("[Unit]\nDescription=argv check\n[Service]\nType=oneshot\nExecStart="+line+"\n"), 0o644)
	write(t, filepath.Join(work, directDir, "argv.expect"), nulJoin(bootArgs), 0o644)

	ctl, ack := serveContainerd(t, ctrd, out)
	env := append(os.Environ(),
		"BOOT_CONTAINERD_ADDRESS="+addr,
		"BOOT_NAMESPACE="+ns,
		"BOOT_ID="+id,
		"BOOT_BIN="+bin,
		"BOOT_CONFIG="+cfgPath,
		"BOOT_PORT="+strconv.Itoa(port),
		"BOOT_LOG="+filepath.Join(logDir, id+".log"),
		"BOOT_DATA="+filepath.Join(work, "data"),
		"BOOT_RUN="+filepath.Join(work, "run"),
		"BOOT_CTRD_CTL="+ctl,
		"BOOT_CTRD_ACK="+ack,
		"BOOT_BINDS="+work,
		"BOOT_BINDS_RO="+image,
		"BOOT_OUT="+out,
		"BOOT_ARCHIVE="+archive,
		"BOOT_UPGRADE_GOOD="+good,
		"BOOT_UPGRADE_BAD="+bad,
		"BOOT_EXPECT_CMDLINE="+filepath.Join(out, "cmdline"),
		"BOOT_EXPECT_SHOW="+show,
		"BOOT_ARGV_UNIT="+filepath.Join(out, "argv-check.service"),
		"BOOT_ARGV_EXPECT="+filepath.Join(work, directDir, "argv.expect"),
	)
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "boot-test.sh"))
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if testing.Verbose() {
		cmd.Stdout = io.MultiWriter(&logs, os.Stderr)
		cmd.Stderr = cmd.Stdout
	}
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		console, _ := os.ReadFile(filepath.Join(out, "console.log"))
		t.Fatalf("boot test failed after %v: %v\n%s\n--- machine console (tail):\n%s", took.Round(time.Millisecond), err, logs.String(), tail(console, 40))
	}
	// The exact argv systemd holds for ExecStart, through D-Bus (JSON: no
	// ambiguity from spaces, unlike systemctl show's joined form).
	raw, err := os.ReadFile(filepath.Join(out, "execstart.json"))
	if err != nil {
		t.Fatal(err)
	}
	var prop struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &prop); err != nil || len(prop.Data) != 1 || len(prop.Data[0]) < 2 {
		t.Fatalf("busctl ExecStart %s: %v", raw, err)
	}
	var path string
	var got []string
	if err := json.Unmarshal(prop.Data[0][0], &path); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(prop.Data[0][1], &got); err != nil {
		t.Fatal(err)
	}
	if path != stored[0] || !slices.Equal(got, stored) {
		t.Errorf("systemd holds ExecStart path %q argv %q, want %q %q", path, got, stored[0], stored)
	}
	t.Logf("boot test passed in %v (rootfs build included only on a cold cache)", took.Round(time.Millisecond))
}

// serveContainerd lets the script kill and restart the private containerd,
// which this process owns: the script writes "kill" or "restart" to ctl
// (a FIFO) and reads "ok", or what went wrong, from ack.
func serveContainerd(t *testing.T, c *ctrtest.Containerd, dir string) (ctl, ack string) {
	ctl, ack = filepath.Join(dir, "ctrd.ctl"), filepath.Join(dir, "ctrd.ack")
	for _, p := range []string{ctl, ack} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatalf("mkfifo %s: %v", p, err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for serveOne(c, ctl, ack) {
		}
	}()
	t.Cleanup(func() {
		// O_RDWR never blocks on a FIFO, and wakes the reader's open.
		if f, err := os.OpenFile(ctl, os.O_RDWR, 0); err == nil {
			f.WriteString("quit\n")
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("the containerd control loop did not quit (blocked on %s?)", ack)
			}
			f.Close()
		}
	})
	return ctl, ack
}

// serveOne handles one request; false once told to quit. Restart fails
// the test with t.Fatal, which ends this goroutine: the deferred reply
// still tells the script.
func serveOne(c *ctrtest.Containerd, ctl, ack string) bool {
	f, err := os.Open(ctl)
	if err != nil {
		return false
	}
	// A line, not EOF: the cleanup's quit comes from a writer that stays open.
	line, _ := bufio.NewReader(f).ReadString('\n')
	f.Close()
	req := strings.TrimSpace(line)
	switch req {
	case "quit":
		return false
	case "":
		return true // an open without a request: nobody waits for a reply
	}
	reply := "failed: " + req
	defer func() {
		if a, err := os.OpenFile(ack, os.O_WRONLY, 0); err == nil {
			a.WriteString(reply + "\n")
			a.Close()
		}
	}()
	switch req {
	case "kill":
		c.Kill9()
	case "restart":
		c.Restart()
	default:
		reply = "unknown request " + strconv.Quote(req)
		return true
	}
	reply = "ok"
	return true
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
