package logdriver

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCopy: 64 MiB of 100-byte lines through a real pipe, in 64 KiB
// writes, into a log file (the driver's own cost, without containerd).
func BenchmarkCopy(b *testing.B) {
	chunk := lineChunk()
	const total = 64 << 20
	b.SetBytes(total)
	for i := 0; i < b.N; i++ {
		p := filepath.Join(b.TempDir(), "c.log")
		w, err := Open(Options{Path: p})
		if err != nil {
			b.Fatal(err)
		}
		r, pw, _ := os.Pipe()
		go func() {
			for n := 0; n < total; n += len(chunk) {
				pw.Write(chunk)
			}
			pw.Close()
		}()
		cw := &countW{w: w}
		if err := Copy(cw, nil, r, nil); err != nil {
			b.Fatal(err)
		}
		r.Close()
		w.Close()
		b.ReportMetric(float64(cw.n), "writes")
		b.ReportMetric(float64(cw.ns)/float64(cw.n), "ns/write")
	}
}

type countW struct {
	w     io.Writer
	n, ns int64
}

func (c *countW) Write(p []byte) (int, error) {
	c.n++
	t := time.Now()
	n, err := c.w.Write(p)
	c.ns += int64(time.Since(t))
	return n, err
}

// BenchmarkPlainCopy is what containerd's file:// does: io.CopyBuffer
// with 32 KiB from the pipe to the file, for comparison.
func BenchmarkPlainCopy(b *testing.B) {
	chunk := lineChunk()
	const total = 64 << 20
	b.SetBytes(total)
	for i := 0; i < b.N; i++ {
		p := filepath.Join(b.TempDir(), "c.log")
		f, _ := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		r, pw, _ := os.Pipe()
		go func() {
			for n := 0; n < total; n += len(chunk) {
				pw.Write(chunk)
			}
			pw.Close()
		}()
		io.CopyBuffer(struct{ io.Writer }{f}, r, make([]byte, 32<<10))
		r.Close()
		f.Close()
	}
}

// lineChunk is up to 64 KiB of whole 100-byte lines, one pipe write.
func lineChunk() []byte {
	line := make([]byte, 100)
	for i := range line {
		line[i] = 'x'
	}
	line[99] = '\n'
	chunk := make([]byte, 0, 64<<10)
	for len(chunk)+len(line) <= cap(chunk) {
		chunk = append(chunk, line...)
	}
	return chunk
}
