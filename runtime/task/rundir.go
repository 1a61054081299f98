package task

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/a7garden/oxios/internal/safefs"
)

// The per-container run directory RUN_DIR/ID is host-private (owned by
// oxios's user, 0700): the start of every path the host opens in it is
// out of the container's reach. Only its two subdirectories are mounted
// into the container (spec.go mounts).
const (
	ctrSub      = "ctr"       // the container's, read-write at contract.RunMount
	notifySub   = "notify"    // the host's notify socket, read-only in the container
	logErrorSub = "log-error" // the log driver's report; host only
	// ctrSize bounds what the container can put into the host's RAM-backed
	// /run through ctr/: oxios-init keeps a socket and a short ready file
	// there.
	ctrSize = "1m"
)

func (r *Runtime) ctrDir() string    { return filepath.Join(r.runDir(), ctrSub) }
func (r *Runtime) notifyDir() string { return filepath.Join(r.runDir(), notifySub) }

// openRunRoot opens RUN_DIR, creating it. It must be ours and writable by
// nobody else: the start lock and every private dir hang off it.
func (r *Runtime) openRunRoot() (*safefs.Dir, error) {
	dir := r.cfg.Container.RunDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run dir %s (container.run_dir): %w", dir, err)
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("run dir %s (container.run_dir): %w", dir, err)
	}
	st, err := d.Stat()
	if err == nil && (int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0) {
		err = fmt.Errorf("run dir %s (container.run_dir) is owned by uid %d with mode %#o: want uid %d and no write access for group or others", dir, st.Uid, st.Mode&0o7777, os.Geteuid())
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openPrivate opens RUN_DIR/ID, owned by us with mode 0700. A directory
// there that is not ours (an older oxios handed all of RUN_DIR/ID to the
// container's user) is moved aside and removed first: anything in it may
// have been planted.
func (r *Runtime) openPrivate() (*safefs.Dir, error) {
	root, err := r.openRunRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	id := r.cfg.Container.ID
	var st unix.Stat_t
	err = unix.Fstatat(root.Fd(), id, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0) {
		if err := r.discard(root, id); err != nil {
			return nil, err
		}
	}
	return root.MkdirOwned(id, safefs.Owner{UID: -1, GID: -1, Mode: 0o700})
}

// discard renames RUN_DIR/name out of the way and removes it (os.RemoveAll
// opens nothing through a symbolic link).
func (r *Runtime) discard(root *safefs.Dir, name string) error {
	aside := "." + name + ".old-" + strconv.Itoa(os.Getpid())
	if err := unix.Renameat(root.Fd(), name, root.Fd(), aside); err != nil {
		return fmt.Errorf("move aside %s: %w", filepath.Join(root.Path(), name), err)
	}
	p := filepath.Join(root.Path(), aside)
	detach(filepath.Join(p, ctrSub))
	// Out of the way is what matters; what cannot be removed (a mount
	// point) stays under the dot name.
	os.RemoveAll(p)
	return nil
}

// prepareRun lays out RUN_DIR/ID for a new task of a container whose
// processes run as uid:gid: notify/ (ours, 0755), ctr/ (theirs, 0750;
// a fresh size-capped tmpfs where oxios can mount one), and no stale log
// driver report.
func (r *Runtime) prepareRun(uid, gid int) error {
	priv, err := r.openPrivate()
	if err != nil {
		return err
	}
	defer priv.Close()
	nd, err := priv.MkdirOwned(notifySub, safefs.Owner{UID: -1, GID: -1, Mode: 0o755})
	if err != nil {
		return err
	}
	nd.Close()
	if os.Geteuid() != 0 {
		uid, gid = -1, -1 // cannot give it away; nor can runc, then
	}
	r.unmountCtr() // the previous task's: start empty
	owner := safefs.Owner{UID: uid, GID: gid, Mode: 0o750}
	cd, err := priv.MkdirOwned(ctrSub, owner)
	if err != nil {
		return err
	}
	mounted := r.mountCtr(cd)
	cd.Close()
	if mounted {
		// The tmpfs's own root, set up as the directory was.
		if cd, err = priv.MkdirOwned(ctrSub, owner); err != nil {
			return err
		}
		cd.Close()
	}
	return priv.Remove(logErrorSub)
}

// mountCtr puts a fresh tmpfs of ctrSize on ctr/ (the directory cd, by
// its fd: no path is followed) when that bounds what the container
// writes: as root, and only where containerd sees the mount. A CLI in
// another mount namespace than containerd (oxios inside systemd-nspawn,
// containerd on the host) would mount it where runc never looks: there
// ctr/ stays a plain directory on RUN_DIR's filesystem.
func (r *Runtime) mountCtr(cd *safefs.Dir) bool {
	if os.Geteuid() != 0 {
		return false
	}
	pid := containerdPID(r.cfg.Containerd.Address)
	if pid <= 0 {
		return false
	}
	target := "/proc/self/fd/" + strconv.Itoa(cd.Fd())
	if mountTmpfs(target, "size="+ctrSize+",mode=0700") != nil {
		return false // no tmpfs here (a restricted mount namespace): unbounded, as before
	}
	if !sameMountNS(pid) && !mountedIn(pid, cd.Path()) {
		r.unmountCtr()
		return false
	}
	return true
}

// unmountCtr removes the ctr/ tmpfs, if one is mounted (teardown).
func (r *Runtime) unmountCtr() {
	for detach(r.ctrDir()) == nil {
	}
}

// releaseRun is the teardown of a stopped container's run dir.
func (r *Runtime) releaseRun() { r.unmountCtr() }

// containerdPID is the PID of the containerd serving address, as seen
// from here (SO_PEERCRED); 0 when it runs in a PID namespace we do not
// see, -1 when it cannot be asked.
func containerdPID(address string) int {
	c, err := net.Dial("unix", address)
	if err != nil {
		return -1
	}
	defer c.Close()
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return -1
	}
	pid := -1
	rc.Control(func(fd uintptr) {
		if p, err := safefs.PeerPID(int(fd)); err == nil {
			pid = p
		}
	})
	return pid
}

// sameMountNS: process pid shares this process's mount namespace, so it
// sees every mount made here (two stats; mountedIn reads and scans a whole
// mount table).
func sameMountNS(pid int) bool {
	var self, other unix.Stat_t
	if unix.Stat("/proc/self/ns/mnt", &self) != nil || unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/mnt", &other) != nil {
		return false
	}
	return self.Dev == other.Dev && self.Ino == other.Ino
}

// mountedIn reports whether path is a tmpfs mount point in the mount
// namespace of process pid.
func mountedIn(pid int, path string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE ...
		if len(f) < 7 || unescapeMount(f[4]) != path {
			continue
		}
		for i := 6; i+1 < len(f); i++ {
			if f[i] == "-" {
				return f[i+1] == "tmpfs"
			}
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (space, tab, newline,
// backslash).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
