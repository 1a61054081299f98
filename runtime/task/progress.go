package task

import (
	"archive/tar"
	"io"
	"os"
	"strings"
)

// importProgress returns a reader of f that, as the import reads the
// archive, prints one line per blob it holds (a layer, the config, a
// manifest) with its size and how far into the archive it is: per-layer
// progress for a person watching (Options.Progress). stop waits for the
// printer; call it once the import returned.
func (r *Runtime) importProgress(f *os.File) (io.Reader, func()) {
	var total int64
	if st, err := f.Stat(); err == nil {
		total = st.Size()
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.printBlobs(pr, total)
		io.Copy(io.Discard, pr) // whatever follows the tar's end
	}()
	stop := func() {
		pw.Close()
		<-done
	}
	return io.TeeReader(f, pw), stop
}

// printBlobs reads the archive's tar headers as the import goes: the
// OCI layout keeps each blob as blobs/ALG/DIGEST.
func (r *Runtime) printBlobs(rd io.Reader, total int64) {
	cr := &countingReader{r: rd}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err != nil {
			return
		}
		_, digest, ok := strings.Cut(strings.TrimPrefix(h.Name, "blobs/"), "/")
		if !ok || !strings.HasPrefix(h.Name, "blobs/") || h.Typeflag != tar.TypeReg {
			continue
		}
		// Read the blob through, so the line says how far the import is
		// once this blob is in.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return
		}
		pct := 100
		if total > 0 {
			pct = int(min(cr.n*100/total, 100))
		}
		r.progress("  imported blob %.12s (%d bytes; %d%% of the archive)", digest, h.Size, pct)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
