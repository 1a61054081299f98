//go:build linux

package task

import (
	"context"
	"testing"

	"github.com/a7garden/oxios/internal/ctrtest"
)

func TestPullFromLocalRegistry(t *testing.T) {
	e := newEnv(t)
	reg := ctrtest.StartRegistry(t)
	ref := reg + "/oxios/demo:test"
	ctrtest.Push(t, e.cfg.Image.Archive, ref)
	e.cfg.Image.Ref = ref
	e.cfg.Image.Archive = ""
	e.cfg.Image.PlainHTTP = true
	r := e.connect(t)
	st, err := r.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if get(t, st.URL+"/health") != 200 {
		t.Fatal("pulled image does not serve")
	}
	s, err := r.Status(context.Background())
	if err != nil || s.Image != ref || s.ImageDigest == "" {
		t.Fatalf("status: %+v %v", s, err)
	}
}
