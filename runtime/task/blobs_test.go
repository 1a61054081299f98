//go:build linux

package task

import (
	"reflect"
	"testing"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/v2/core/content"
	"google.golang.org/grpc"
)

// readImageConfig (one Read per blob) gives what the client's Image.Spec
// gives, and a descriptor whose size does not fit its digest is an error,
// not a short or padded blob.
func TestReadImageConfig(t *testing.T) {
	e := newEnv(t)
	r, ctx, img := e.connectWithImage(t)
	want, err := img.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.readImageConfig(ctx, img.Target())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config differs:\n%+v\n%+v", got, want)
	}
	p := blobs{contentapi.NewContentClient(r.client.Conn().(grpc.ClientConnInterface))}
	for _, delta := range []int64{-1, 1} {
		d := img.Target()
		d.Size += delta
		if b, err := content.ReadBlob(ctx, p, d); err == nil {
			t.Errorf("size %+d: read %d bytes without an error", delta, len(b))
		}
	}
}
