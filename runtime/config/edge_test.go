package config

import (
	"slices"
	"strings"
	"testing"
)

// init.stale_files names what oxios-init removes: only paths under the
// data mount, and none that OXIOS_INIT_STALE could split.
func TestStaleFilesConfinedToDataMount(t *testing.T) {
	for _, v := range []string{
		`"/data/../etc/passwd"`, `"/etc/passwd"`, `"data/x.pid"`, `"/data"`, `"/data/"`,
		`"/datax/x.pid"`, `"/data/a/../../x"`, `"/data/x\ny"`, `"{data}/../x"`,
	} {
		_, err := parse(t, "[init]\nstale_files = ["+v+"]\n")
		if err == nil || !strings.Contains(err.Error(), "key init.stale_files") {
			t.Errorf("stale_files = [%s]: %v, want refused naming the key", v, err)
			continue
		}
		if !strings.Contains(err.Error(), strings.Trim(v, `"`)) {
			t.Errorf("stale_files = [%s]: %v does not name the value", v, err)
		}
	}
	c, err := parse(t, "[init]\nstale_files = [\"/data/a:b.pid\", \"{data}/x.sock\", \"/data/./y.lock\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "OXIOS_INIT_STALE=/data/a:b.pid\n/data/x.sock\n/data/y.lock"
	if env := c.InitEnv(); !slices.Contains(env, want) {
		t.Errorf("InitEnv = %q, want %q", env, want)
	}
	if _, err := parse(t, "[init.extra]\nstale = \"/etc/shadow\"\n"); err == nil || !strings.Contains(err.Error(), "init.stale_files") {
		t.Errorf("init.extra.stale: %v, want refused pointing at init.stale_files", err)
	}
	if _, err := parse(t, "[container]\ndata_mount = \"/srv/d\"\n[init]\nstale_files = [\"/srv/d/p\"]\n"); err != nil {
		t.Errorf("a path under another data_mount: %v", err)
	}
}

// resources.pids: 4096 unless the file says otherwise; an explicit 0 is
// no limit.
func TestPidsDefault(t *testing.T) {
	c, err := parse(t, "")
	if err != nil || c.Resources.Pids != DefaultPids || DefaultPids != 4096 {
		t.Fatalf("default pids %d (%v), want 4096", c.Resources.Pids, err)
	}
	c, err = parse(t, "[resources]\npids = 0\n")
	if err != nil || c.Resources.Pids != 0 {
		t.Fatalf("explicit pids = 0: %d (%v), want 0 (no limit)", c.Resources.Pids, err)
	}
}

// "root" is the one name container.user takes: the way to ask for uid 0.
func TestParseUserRoot(t *testing.T) {
	if uid, gid, ok := ParseUser("root"); !ok || uid != 0 || gid != 0 {
		t.Errorf("ParseUser(root) = %d, %d, %v", uid, gid, ok)
	}
	if _, err := parse(t, "[container]\nuser = \"root\"\n"); err != nil {
		t.Errorf("container.user = root: %v", err)
	}
}
