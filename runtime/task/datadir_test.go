package task

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

func TestCanWrite(t *testing.T) {
	for _, c := range []struct {
		mode         fs.FileMode
		owner, group uint32
		want         bool
	}{
		{0o755, 65532, 0, true},  // owned by the daemon
		{0o555, 65532, 0, false}, // owned, but not writable
		{0o755, 0, 0, false},     // an admin's mkdir -p
		{0o775, 0, 65532, true},  // the daemon's group may write
		{0o757, 0, 0, true},      // anyone may write
		{0o753, 0, 0, true},
		{0o752, 0, 0, false},     // write without search is not enough
		{0o077, 65532, 0, false}, // the owner's bits decide for the owner
	} {
		if got := canWrite(c.mode, c.owner, c.group, 65532, 65532); got != c.want {
			t.Errorf("canWrite(%04o, owner %d, group %d) = %v, want %v", c.mode, c.owner, c.group, got, c.want)
		}
	}
}

// TestCheckDataDir: a root-owned data dir is refused for the image's
// user with everything the fix needs; the daemon's own dir passes.
func TestCheckDataDir(t *testing.T) {
	testenv.RequireRoot(t) // chown
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // an admin's mkdir -p
		t.Fatal(err)
	}
	err := checkDataDir(dir, 65532, 65532)
	var de *DataDirError
	if !errors.Is(err, ErrDataDirAccess) || !errors.As(err, &de) {
		t.Fatalf("root-owned 0755 dir: %v, want a DataDirError", err)
	}
	for _, want := range []string{dir, "owner 0:0", "mode 0755", "user 65532:65532", "chown -R 65532:65532 " + dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if err := os.Chown(dir, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	if err := checkDataDir(dir, 65532, 65532); err != nil {
		t.Errorf("the daemon's own dir: %v", err)
	}
}
