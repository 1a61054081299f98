package task

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a7garden/oxios/runtime/logdriver"
)

func TestTailLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	var b strings.Builder
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	got, err := TailLines(p, 3)
	if err != nil || strings.Join(got, ",") != "line 99997,line 99998,line 99999" {
		t.Fatalf("%q %v", got, err)
	}
}

// tailSince shows only what was written after the mark, and all of a log
// that was rotated since.
func TestTailSince(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte("old 1\nold 2\nold 3\n"), 0o644)
	m := markLog(p)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("new 1\nnew 2\n")
	f.Close()
	if got, err := tailSince(p, m, 30); err != nil || strings.Join(got, ",") != "new 1,new 2" {
		t.Fatalf("after appending: %q %v", got, err)
	}
	if got, _ := tailSince(p, m, 1); strings.Join(got, ",") != "new 2" {
		t.Fatalf("last 1: %q", got)
	}
	os.Rename(p, p+".1")
	os.WriteFile(p, []byte("rotated 1\n"), 0o644)
	if got, err := tailSince(p, m, 30); err != nil || strings.Join(got, ",") != "rotated 1" {
		t.Fatalf("after rotation: %q %v", got, err)
	}
	if got, _ := tailSince(filepath.Join(t.TempDir(), "new.log"), logMark{}, 30); len(got) != 0 {
		t.Fatalf("missing log: %q", got)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
	ch chan struct{}
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *syncBuf) waitFor(t *testing.T, sub string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		ok := strings.Contains(s.b.String(), sub)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.ch:
		case <-deadline:
			t.Fatalf("%q never followed; got %q", sub, s.b.String())
		}
	}
}

// logs -f keeps following across a rotation by the log driver.
func TestFollowAcrossRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	w, err := logdriver.Open(logdriver.Options{Path: p, MaxSize: 200, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	io.WriteString(w, "before\n")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{ch: make(chan struct{}, 1)}
	done := make(chan error)
	go func() { done <- WriteLogs(ctx, p, out, LogOptions{Lines: 1, Follow: true}) }()
	out.waitFor(t, "before\n")
	for i := 0; i < 10; i++ { // ~250 bytes: exactly one rotation
		fmt.Fprintf(w, "after rotation line %02d\n", i)
	}
	out.waitFor(t, "after rotation line 09\n")
	if _, err := os.Stat(p + ".1"); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.b.String(), "after rotation line"); n != 10 {
		t.Fatalf("followed %d of 10 lines:\n%s", n, out.b.String())
	}
}
