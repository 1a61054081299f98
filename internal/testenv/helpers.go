package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RandID is prefix-XXXXXXXX: container IDs that no other test run shares.
func RandID(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// WaitFor polls cond until it holds, failing the test after within. Only
// for states no event announces (another process's /proc, a port).
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// CopyFile copies src to dst with mode, creating dst's directory.
func CopyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Stat is what tests read of /proc/PID/stat (proc(5)).
type Stat struct {
	State          string
	PPid           int
	UTime, STime   uint64 // the process's CPU, clock ticks
	CUTime, CSTime uint64 // its waited-for children's
}

// ProcStat reads /proc/PID/stat. comm may hold spaces and parentheses:
// the fields start after its last ')'.
func ProcStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields after comm", pid, len(f))
	}
	num := func(field int) uint64 { v, _ := strconv.ParseUint(f[field-3], 10, 64); return v }
	ppid, _ := strconv.Atoi(f[1])
	return Stat{State: f[0], PPid: ppid, UTime: num(14), STime: num(15), CUTime: num(16), CSTime: num(17)}, nil
}

// ListenerInode opens a TCP listener on 127.0.0.1, closed when the test
// ends, and returns the inode of its socket: what /proc/PID/fd shows as
// socket:[INODE] and sock_diag reports.
func ListenerInode(t testing.TB) uint64 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // a duplicate: the listener's own descriptor stays
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
