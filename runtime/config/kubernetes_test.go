package config

import (
	"strings"
	"testing"
)

func TestKubernetesSection(t *testing.T) {
	c, err := Parse("/k.toml", []byte("[container]\nenv = [\"A={port}\"]\n[kubernetes]\nenv = [\"B={data}\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.PodEnv(), " "); got != "A=4200 B=/data" {
		t.Errorf("PodEnv %q", got)
	}
	if c.PodMemory() != DefaultPodMemory {
		t.Errorf("PodMemory %d, want kubernetes.memory's default", c.PodMemory())
	}
	c, err = Parse("/k.toml", []byte("[resources]\nmemory = \"1G\"\n[kubernetes]\nmemory = \"0\"\n"))
	if err != nil || c.PodMemory() != 1<<30 {
		t.Errorf("resources.memory must win: %v, %d", err, c.PodMemory())
	}
	for text, key := range map[string]string{
		"[kubernetes]\nenv = [\"=x\"]\n":    "kubernetes.env",
		"[kubernetes]\nmemory = \"1MiB\"\n": "kubernetes.memory",
		"[kubernetes]\nnamespace = \"x\"\n": "kubernetes.namespace",
	} {
		if _, err := Parse("/k.toml", []byte(text)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: err %v, want one naming %s", text, err, key)
		}
	}
}
