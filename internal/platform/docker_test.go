package platform

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestBuildContextHonoursDockerignore(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile":         "FROM scratch\n",
		".dockerignore":      "# comment\n*.log\n**/*.tmp\nsecrets/\nnode_modules\ndocs/*\n!docs/keep.md\nDockerfile\n",
		"app":                "binary",
		"debug.log":          "noise",
		"secrets/key.pem":    "-----BEGIN",
		"node_modules/x/y":   "dep",
		"docs/keep.md":       "kept by !",
		"docs/drop.md":       "dropped",
		"src/main.go":        "package main",
		"src/nested/app.log": "kept: *.log is the top level only, as in Docker",
		"src/nested/x.tmp":   "dropped by **/*.tmp",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := writeContext(&buf, dir, "Dockerfile"); err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			got = append(got, h.Name)
		}
	}
	slices.Sort(got)
	// the Dockerfile and .dockerignore always go, even when excluded
	want := []string{".dockerignore", "Dockerfile", "app", "docs/keep.md", "src/main.go", "src/nested/app.log"}
	if !slices.Equal(got, want) {
		t.Fatalf("context holds %v, want %v", got, want)
	}
}

func TestImageReferencesByDigestOnly(t *testing.T) {
	for ref, want := range map[string]bool{
		"127.0.0.1:5000/api@sha256:abc": true,
		"sha256:abc":                    true,
		"127.0.0.1:5000/api:v2":         false,
		"api:latest":                    false,
	} {
		if byDigest(ref) != want {
			t.Errorf("byDigest(%q) = %v", ref, !want)
		}
	}
}
