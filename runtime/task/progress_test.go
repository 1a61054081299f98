package task

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// importProgress passes the archive through unchanged and prints one
// line per blob, once the blob has been read, with how far the import is.
func TestImportProgressLines(t *testing.T) {
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	files := []struct {
		name string
		size int
	}{{"oci-layout", 30}, {"blobs/", 0}, {"blobs/sha256/", 0}, {"blobs/sha256/aaaaaaaaaaaaaaaa", 1000}, {"blobs/sha256/bbbbbbbbbbbbbbbb", 200000}, {"index.json", 300}}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(f.size), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		tw.WriteHeader(h)
		tw.Write(bytes.Repeat([]byte{'x'}, f.size))
	}
	tw.Close()
	path := filepath.Join(t.TempDir(), "a.tar")
	os.WriteFile(path, archive.Bytes(), 0o644)
	f, _ := os.Open(path)
	defer f.Close()
	var out bytes.Buffer
	r := &Runtime{out: &out}
	rd, stop := r.importProgress(f)
	got, err := io.ReadAll(rd)
	stop()
	if err != nil || !bytes.Equal(got, archive.Bytes()) {
		t.Fatalf("the import reads %d bytes (%v), the archive has %d", len(got), err, archive.Len())
	}
	want := "  imported blob aaaaaaaaaaaa (1000 bytes; 1% of the archive)\n" +
		"  imported blob bbbbbbbbbbbb (200000 bytes; 98% of the archive)\n"
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
}
