package upgrade

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/distribution/reference"
)

// Errors of what an upgrade was asked for, found before anything is
// locked, recorded or fetched.
var (
	// ErrBadRef: the image reference does not parse, or is not written
	// in full (a pull goes to the registry it names, and there is no
	// default one).
	ErrBadRef = errors.New("bad image reference")
	// ErrBadArchive: the archive is missing or is not an image archive.
	ErrBadArchive = errors.New("bad image archive")
)

// CheckSource refuses a source (o.Ref, o.Archive) that cannot be had,
// before anything else: a typo must not recover, lock or record
// anything. Upgrade calls it first; a CLI may call it before it connects.
func CheckSource(o Options) error {
	switch {
	case o.Ref != "" && o.Archive != "":
		return fmt.Errorf("%w: %s and the archive %s together: give one", ErrBadRef, o.Ref, o.Archive)
	case o.Ref != "":
		return checkRef(o.Ref)
	case o.Archive != "":
		return checkArchive(o.Archive)
	}
	return nil
}

// checkRef parses ref as a pull would need it: a full name, with its
// registry (what `docker pull` would complete is spelt out in the error).
func checkRef(ref string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("%w %q: %w", ErrBadRef, ref, err)
	}
	if named.String() != ref {
		return fmt.Errorf("%w %q: not a full name; write it as %s", ErrBadRef, ref, named.String())
	}
	return nil
}

// checkArchive: a regular file that reads as a tar archive, compressed or
// not (what containerd's import accepts). Its content is left to the
// import, which names the archive in its errors.
func checkArchive(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadArchive, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrBadArchive, path)
	}
	rd, err := compression.DecompressStream(f)
	if err == nil {
		defer rd.Close()
		_, err = tar.NewReader(rd).Next()
	}
	if err != nil {
		return fmt.Errorf("%w: %s is not an image archive (an OCI or docker archive, a tar file): %w", ErrBadArchive, path, err)
	}
	return nil
}
