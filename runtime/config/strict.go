package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotTrusted is wrapped when oxios, running as root, refuses a file
// that a user other than root could have written: the config decides what
// root runs (containerd.runtime_binary, the image, the mounts), so
// whoever can write it, or replace it through a directory above it, is
// root. The rule is sshd's StrictModes: the file and every directory up
// to / are owned by root and not writable by group or others. A sticky
// directory (/tmp) may be writable by all, since no one else can rename
// or remove the root-owned entry in it.
var ErrNotTrusted = errors.New("refused while running as root")

// maxConfigSize bounds what Load reads: a config is a few KiB.
const maxConfigSize = 1 << 20

// readConfig reads the config file; when strict (root) it first checks
// that only root can have written it, on the descriptor it then reads.
func readConfig(path string, strict bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if strict {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if err := trusted(path, fi); err != nil {
			return nil, err
		}
		if err := trustedDirs(path); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err == nil && len(data) > maxConfigSize {
		err = fmt.Errorf("larger than %d bytes", maxConfigSize)
	}
	return data, err
}

// CheckTrusted refuses path (and the directories above it, both as
// written and with symlinks resolved) when a user other than root owns it
// or can write it. It checks only when running as root: another user's
// binary or config is theirs to run.
func CheckTrusted(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := trusted(path, fi); err != nil {
		return err
	}
	return trustedDirs(path)
}

// checkRuntimeBinary: containerd's shim runs containerd.runtime_binary as
// root for every container operation.
func (c *Config) checkRuntimeBinary(strict bool) error {
	bin := c.Containerd.RuntimeBinary
	if bin == "" || !strict {
		return nil
	}
	p := bin
	if !strings.Contains(bin, "/") {
		lp, err := exec.LookPath(bin)
		if err != nil {
			return nil // the shim reports a missing runtime itself
		}
		p = lp
	}
	if err := CheckTrusted(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return bad("containerd.runtime_binary", "%v", err)
	}
	return nil
}

// trustedDirs checks every directory above path, and above its target
// when a symlink is on the way.
func trustedDirs(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	chains := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		chains = append(chains, real)
	}
	for _, p := range chains {
		for dir := filepath.Dir(p); !seen[dir]; dir = filepath.Dir(dir) {
			seen[dir] = true
			fi, err := os.Stat(dir)
			if err != nil {
				return err
			}
			if err := trusted(dir, fi); err != nil {
				return err
			}
		}
	}
	return nil
}

// trusted: owned by root, not writable by group or others (a sticky
// directory excepted).
func trusted(path string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if st.Uid != 0 {
		return fmt.Errorf("%w: %s is owned by %s, not root: run `chown root %s`", ErrNotTrusted, path, owner(st.Uid), path)
	}
	mode := fi.Mode()
	if mode.Perm()&0o022 != 0 && !(mode.IsDir() && mode&os.ModeSticky != 0) {
		return fmt.Errorf("%w: %s is writable by %s (mode %04o): run `chmod go-w %s`", ErrNotTrusted, path, writers(mode), mode.Perm(), path)
	}
	return nil
}

func owner(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

func writers(mode os.FileMode) string {
	switch {
	case mode&0o022 == 0o022:
		return "group and others"
	case mode&0o020 != 0:
		return "its group"
	}
	return "others"
}
