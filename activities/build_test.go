package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/switchyard/switchyard/internal/spec"
)

func TestBuildRunsTheSpecCommandWithTheVersionAndKeepsAFailuresOutput(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	a := &Activities{}
	env.RegisterActivity(a)
	dir := t.TempDir()
	s := spec.Service{Name: "api", Dir: dir, Build: spec.Build{Timeout: spec.Duration(time.Minute),
		Command: []string{"sh", "-c", "echo building $VERSION > built-{{version}}.txt"}}}
	if _, err := env.ExecuteActivity(a.Build, BuildInput{Spec: s, Version: "v7"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "built-v7.txt")); err != nil || string(b) != "building v7\n" {
		t.Fatalf("the build ran in the spec's dir with VERSION set: %q %v", b, err)
	}
	s.Build.Command = []string{"sh", "-c", "echo compiling; echo 'main.go:3: undefined: foo' >&2; exit 3"}
	_, err := env.ExecuteActivity(a.Build, BuildInput{Spec: s, Version: "v8"})
	if err == nil || !strings.Contains(err.Error(), "build v8 failed: exit status 3") || !strings.Contains(err.Error(), "main.go:3: undefined: foo") {
		t.Fatalf("got %v", err)
	}
}
