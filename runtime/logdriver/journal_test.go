//go:build linux

package logdriver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/a7garden/oxios/internal/testenv"
)

// journaldScript runs a real systemd-journald in a private mount namespace
// (a tmpfs on /run: nothing of the host's is touched), waits for its
// socket, runs the test binary ("$@") to send, and prints the entries
// oxios sent as JSON.
const journaldScript = `set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald &
jd=$!
trap 'kill $jd 2>/dev/null' EXIT
i=0
until [ -S /run/systemd/journal/socket ]; do
	i=$((i+1)); [ $i -lt 200 ] || { echo "journald did not start" >&2; exit 1; }
	sleep 0.05
done
"$@" >&2
journalctl --sync
journalctl -D /run/log/journal -o json --all --no-pager SYSLOG_IDENTIFIER=oxios
`

// The journald driver, run as the shim runs it (Main: streams on fds 3
// and 4, ready on 5, the container's ID and namespace in the
// environment): one entry per line with the fields journalctl filters on,
// priority by stream, long lines as marked parts, bytes that are not
// UTF-8 as they came; checked in a real systemd-journald's files.
func TestLogJournaldEntries(t *testing.T) {
	switch {
	case os.Getenv("OXIOS_JOURNAL_TEST_DRIVER") == "1":
		if err := Main(os.Args[len(os.Args)-6:]); err != nil {
			t.Fatal(err)
		}
		return
	case os.Getenv("OXIOS_JOURNAL_TEST_SEND") == "1":
		out := "out one\n" + strings.Repeat("L", ReadSize+5) + "\nout \xff three\n" + journalBurst()
		runDriver(t, out, "err two\n")
		return
	}
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "/lib/systemd/systemd-journald")
	testenv.RequireTool(t, "journalctl")
	testenv.RequireTool(t, "unshare")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", journaldScript, "sh",
		os.Args[0], "-test.run=^TestLogJournaldEntries$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OXIOS_JOURNAL_TEST_SEND=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("journald run: %v\n%s", err, stderr.String())
	}
	type entry struct{ msg, pri, id, ns, partial string }
	var got []entry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var e map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journalctl -o json: %v: %.200s", err, sc.Bytes())
		}
		got = append(got, entry{field(t, e["MESSAGE"]), field(t, e["PRIORITY"]), field(t, e["CONTAINER_ID"]),
			field(t, e["CONTAINER_NAMESPACE"]), field(t, e["CONTAINER_PARTIAL_MESSAGE"])})
	}
	var stdout, stderrLines []entry
	for _, e := range got {
		if e.id != "c1" || e.ns != "ns1" {
			t.Errorf("entry without its container: %+v", e)
		}
		switch e.pri {
		case "6":
			stdout = append(stdout, e)
		case "3":
			stderrLines = append(stderrLines, e)
		default:
			t.Errorf("priority %q: %.60q", e.pri, e.msg)
		}
	}
	want := []entry{{"out one", "6", "c1", "ns1", ""}, {strings.Repeat("L", ReadSize), "6", "c1", "ns1", "true"},
		{"LLLLL", "6", "c1", "ns1", ""}, {"out \xff three", "6", "c1", "ns1", ""}}
	for _, l := range strings.SplitAfter(journalBurst(), "\n") { // an entry a line, no block
		if l != "" {
			want = append(want, entry{strings.TrimSuffix(l, "\n"), "6", "c1", "ns1", ""})
		}
	}
	if len(stdout) != len(want) || len(stderrLines) != 1 || stderrLines[0].msg != "err two" {
		t.Fatalf("entries: stdout %d (want %d), stderr %+v", len(stdout), len(want), stderrLines)
	}
	for i := range want {
		if stdout[i] != want[i] {
			t.Errorf("stdout entry %d: got %.80q %s, want %.80q %s", i, stdout[i].msg, stdout[i].partial, want[i].msg, want[i].partial)
		}
	}
}

// journalBurst is more than BlockMin of lines, which the file driver
// would write as a block.
func journalBurst() string {
	var b strings.Builder
	for i := 0; b.Len() < 2*BlockMin; i++ {
		fmt.Fprintf(&b, "burst line %03d %s\n", i, strings.Repeat("b", 80))
	}
	return b.String()
}

// runDriver runs this test binary as the journald driver, as containerd's
// shim would, feeds it stdout and stderr, and waits for it to exit.
func runDriver(t *testing.T, stdout, stderr string) {
	var pipes [3][2]*os.File
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogJournaldEntries$", "--", Mode, "1", "driver", DriverJournald, "journal", JournalSocket)
	cmd.Env = append(os.Environ(), "OXIOS_JOURNAL_TEST_SEND=", "OXIOS_JOURNAL_TEST_DRIVER=1", "CONTAINER_ID=c1", "CONTAINER_NAMESPACE=ns1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{pipes[0][0], pipes[1][0], pipes[2][1]}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pipes[0][0].Close()
	pipes[1][0].Close()
	pipes[2][1].Close()
	io.ReadFull(pipes[2][0], make([]byte, 1)) // ready: a byte, or EOF
	pipes[0][1].WriteString(stdout)
	pipes[1][1].WriteString(stderr)
	pipes[0][1].Close()
	pipes[1][1].Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the driver: %v", err)
	}
}

// field decodes a journal JSON field: a string, or an array of bytes for
// a value that is not UTF-8; "" when absent.
func field(t *testing.T, raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b []byte
	var ints []int
	if err := json.Unmarshal(raw, &ints); err != nil {
		t.Fatalf("journal field %s: %v", raw, err)
	}
	for _, i := range ints {
		b = append(b, byte(i))
	}
	return string(b)
}
