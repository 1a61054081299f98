package testenv

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// ImageVariant writes dir/NAME.tar: the OCI archive at archive with its
// image config changed by edit (its "config" object, e.g. User) and named
// ref, so that a test can run the real image as something it is not (an
// image whose USER is root). Layers are shared, not copied.
func ImageVariant(t testing.TB, archive, dir, ref string, edit func(cfg map[string]any)) string {
	t.Helper()
	out, err := imageVariant(archive, dir, ref, edit)
	if err != nil {
		t.Fatalf("image variant of %s: %v", archive, err)
	}
	return out
}

func imageVariant(archive, dir, ref string, edit func(map[string]any)) (string, error) {
	files, order, err := readTar(archive)
	if err != nil {
		return "", err
	}
	var index struct {
		Manifests []map[string]any `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		return "", fmt.Errorf("index.json: want one manifest: %v", err)
	}
	mPath := blobPath(index.Manifests[0]["digest"].(string))
	var manifest map[string]any
	if err := json.Unmarshal(files[mPath], &manifest); err != nil {
		return "", fmt.Errorf("%s: %w", mPath, err)
	}
	cfgDesc := manifest["config"].(map[string]any)
	var img map[string]any
	if err := json.Unmarshal(files[blobPath(cfgDesc["digest"].(string))], &img); err != nil {
		return "", fmt.Errorf("image config: %w", err)
	}
	c, _ := img["config"].(map[string]any)
	if c == nil {
		c = map[string]any{}
	}
	edit(c)
	img["config"] = c
	add := func(v any) (string, int, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return "", 0, err
		}
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		if _, ok := files[blobPath(d)]; !ok {
			order = append(order, blobPath(d))
		}
		files[blobPath(d)] = b
		return d, len(b), nil
	}
	d, n, err := add(img)
	if err != nil {
		return "", err
	}
	cfgDesc["digest"], cfgDesc["size"] = d, n
	if d, n, err = add(manifest); err != nil {
		return "", err
	}
	index.Manifests[0]["digest"], index.Manifests[0]["size"] = d, n
	index.Manifests[0]["annotations"] = map[string]string{"org.opencontainers.image.ref.name": ref}
	if files["index.json"], err = json.Marshal(map[string]any{"schemaVersion": 2, "manifests": index.Manifests}); err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(ref)+".tar")
	return out, writeTar(out, files, order)
}

func blobPath(digest string) string {
	return "blobs/sha256/" + digest[len("sha256:"):]
}

func readTar(path string) (map[string][]byte, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, order, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, nil, err
		}
		files[h.Name] = b
		order = append(order, h.Name)
	}
}

func writeTar(path string, files map[string][]byte, order []string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range order {
		b := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
