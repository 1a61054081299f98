package config

import (
	"strings"
	"testing"
	"time"
)

func TestUpgradeKeys(t *testing.T) {
	c, err := Parse("/u.toml", []byte("[upgrade]\nverify_for = \"5s\"\nsnapshot_data = true\nstate_dir = \"st\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Upgrade.VerifyFor.D() != 5*time.Second || !c.Upgrade.SnapshotData || c.Upgrade.StateDir != "/st" {
		t.Fatalf("upgrade = %+v", c.Upgrade)
	}
	if c.FileKeys["upgrade.verify_for"] != 2 {
		t.Errorf("origin of upgrade.verify_for: line %d, want 2", c.FileKeys["upgrade.verify_for"])
	}
	if d := Default(); d.Upgrade.VerifyFor != DefaultVerifyFor || d.Upgrade.SnapshotData || d.Upgrade.StateDir == "" {
		t.Errorf("defaults: %+v", d.Upgrade)
	}
}

func TestUpgradeKeysRefused(t *testing.T) {
	for in, key := range map[string]string{
		"[upgrade]\nverify_for = \"-1s\"\n":                                     "upgrade.verify_for",
		"[upgrade]\nverify_for = \"soon\"\n":                                    "upgrade.verify_for",
		"[upgrade]\nsnapshot_data = \"yes\"\n":                                  "upgrade.snapshot_data",
		"[container]\ndata_dir = \"/d\"\n[upgrade]\nstate_dir = \"/d/state\"\n": "upgrade.state_dir",
		"[container]\ndata_dir = \"/d\"\n[upgrade]\nstate_dir = \"/d\"\n":       "upgrade.state_dir",
	} {
		_, err := Parse("/u.toml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err = %v, want one naming %s", in, err, key)
		}
	}
}
