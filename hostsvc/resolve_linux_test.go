package hostsvc

import (
	"os"
	"testing"
)

func TestNewInstaller(t *testing.T) {
	in, err := NewInstaller(false, os.Stdout)
	if err != nil || in.Manager != Systemd || in.Path != "/etc/systemd/system/"+UnitName || in.Running == nil {
		t.Fatalf("system installer %+v, %v", in, err)
	}
	t.Setenv("XDG_CONFIG_HOME", "/x")
	in, err = NewInstaller(true, os.Stdout)
	if err != nil || in.Path != "/x/systemd/user/"+UnitName || !in.User || in.Running != nil {
		t.Fatalf("user installer %+v, %v", in, err)
	}
}
