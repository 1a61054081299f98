//go:build linux

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a7garden/oxios/internal/testenv"
)

// As root, a config that another user can write, or that sits in a
// directory another user can write or owns, is refused naming the file,
// its owner or mode, and the fix; a root-owned 0644 file in root-owned
// 0755 directories is read.
func TestStrictModesConfig(t *testing.T) {
	name, uid, gid := testenv.TempUser(t)
	dir, err := os.MkdirTemp("", "oxstrict") // 0700, root's, under sticky /tmp
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "oxios.toml")
	if err := os.WriteFile(path, []byte("[container]\nport = 5001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(path); err != nil || c.Container.Port != 5001 {
		t.Fatalf("root-owned 0644 config: %v", err)
	}
	refused := func(what string, want ...string) {
		t.Helper()
		_, err := Load(path)
		if !errors.Is(err, ErrNotTrusted) {
			t.Fatalf("%s: %v, want refused", what, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", what, err, w)
			}
		}
	}
	os.Chmod(path, 0o666)
	refused("config mode 0666", path, "mode 0666", "chmod go-w "+path)
	os.Chmod(path, 0o620)
	refused("config mode 0620", "writable by its group", "chmod go-w "+path)
	os.Chmod(path, 0o644)
	os.Chown(path, uid, gid)
	refused("config owned by "+name, path, "owned by "+name, "chown root "+path)
	if _, err := LoadForUser(path); err != nil {
		t.Errorf("LoadForUser (a --user service's config, read by root): %v", err)
	}
	os.Chown(path, 0, 0)
	os.Chmod(dir, 0o777)
	refused("directory mode 0777", dir+" is writable", "chmod go-w "+dir)
	os.Chmod(dir, os.ModeSticky|0o777) // sticky, like /tmp: others cannot replace root's file
	if _, err := Load(path); err != nil {
		t.Errorf("config in a sticky world-writable directory: %v", err)
	}
	os.Chmod(dir, 0o755)
	os.Chown(dir, uid, gid)
	refused("directory owned by "+name, dir+" is owned by "+name)
	os.Chown(dir, 0, 0)

	// Through a symlink, the target's directories count too.
	other, err := os.MkdirTemp("", "oxstrict")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(other)
	os.Chown(other, uid, gid)
	link := filepath.Join(dir, "link.toml")
	os.Rename(path, filepath.Join(other, "oxios.toml"))
	os.Symlink(filepath.Join(other, "oxios.toml"), link)
	if _, err := Load(link); !errors.Is(err, ErrNotTrusted) || !strings.Contains(err.Error(), other) {
		t.Errorf("symlink into a directory owned by %s: %v", name, err)
	}
}

// containerd.runtime_binary is run by the shim as root: refused when
// another user can write it.
func TestStrictModesRuntimeBinary(t *testing.T) {
	_, uid, gid := testenv.TempUser(t)
	dir, err := os.MkdirTemp("", "oxstrict")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "runc")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	path := filepath.Join(dir, "oxios.toml")
	os.WriteFile(path, []byte("[containerd]\nruntime_binary = \""+bin+"\"\n"), 0o644)
	if _, err := Load(path); err != nil {
		t.Fatalf("root-owned 0755 runtime binary: %v", err)
	}
	os.Chown(bin, uid, gid)
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), "key containerd.runtime_binary") || !strings.Contains(err.Error(), "chown root "+bin) {
		t.Fatalf("runtime binary owned by another user: %v", err)
	}
	t.Log(err)
}
