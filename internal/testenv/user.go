package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
)

// TempUser creates a system user with no home and no login for the test
// and removes it when the test ends. Needs root and useradd (skips
// otherwise, saying so).
func TempUser(t testing.TB) (name string, uid, gid int) {
	t.Helper()
	RequireRoot(t)
	useradd := RequireTool(t, "useradd")
	userdel := RequireTool(t, "userdel")
	b := make([]byte, 3)
	rand.Read(b)
	name = "oxt" + hex.EncodeToString(b)
	if out, err := exec.Command(useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(userdel, name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("look up the user just created: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return name, uid, gid
}
