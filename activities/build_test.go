package activities

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/switchyard/switchyard/internal/awsapi"
	"github.com/switchyard/switchyard/internal/kube"
	"github.com/switchyard/switchyard/internal/platform"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
)

func TestBuildRunsTheSpecCommandWithTheVersionAndKeepsAFailuresOutput(t *testing.T) {
	env, a := activityEnv()
	dir := t.TempDir()
	s := processSpec(t, dir)
	s.Build = spec.Build{Timeout: spec.Duration(time.Minute), Command: []string{"sh", "-c", "echo building $VERSION > built-{{version}}.txt"}}
	if _, err := env.ExecuteActivity(a.Build, BuildInput{Spec: &s, Version: "v7"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "built-v7.txt")); err != nil || string(b) != "building v7\n" {
		t.Fatalf("the build ran in the spec's dir with VERSION set: %q %v", b, err)
	}
	s.Build.Command = []string{"sh", "-c", "echo compiling; echo 'main.go:3: undefined: foo' >&2; exit 3"}
	_, err := env.ExecuteActivity(a.Build, BuildInput{Spec: &s, Version: "v8"})
	if err == nil || !strings.Contains(err.Error(), "build v8 failed: exit status 3") || !strings.Contains(err.Error(), "main.go:3: undefined: foo") {
		t.Fatalf("got %v", err)
	}
}

func TestGatesRunEveryCommandAndReportEachWithItsOutput(t *testing.T) {
	env, a := activityEnv()
	s := processSpec(t, t.TempDir())
	s.Gates = []spec.Gate{
		{Name: "unit", Command: []string{"sh", "-c", "test \"$VERSION\" = v2 && test \"$ARTIFACT\" = img@sha256:1"}, Timeout: spec.Duration(time.Minute)},
		{Name: "scan", Command: []string{"sh", "-c", "echo 'CVE-2099-1 critical in {{artifact}}' >&2; exit 4"}, Timeout: spec.Duration(time.Minute)},
		{Name: "slow", Command: []string{"sleep", "5"}, Timeout: spec.Duration(200 * time.Millisecond)},
	}
	v, err := env.ExecuteActivity(a.Gates, GatesInput{Spec: &s, Version: "v2", Artifact: "img@sha256:1"})
	if err != nil {
		t.Fatal(err)
	}
	var res []rollout.CheckResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("want a result per gate, got %+v", res)
	}
	if !res[0].Passed || res[0].Name != "gate unit" {
		t.Fatalf("unit gate (VERSION and ARTIFACT set): %+v", res[0])
	}
	if res[1].Passed || !strings.Contains(res[1].Detail, "exit status 4") || !strings.Contains(res[1].Detail, "CVE-2099-1 critical in img@sha256:1") {
		t.Fatalf("scan gate: want its failure with its output, got %+v", res[1])
	}
	if res[2].Passed || !strings.Contains(res[2].Detail, "timed out after 200ms") {
		t.Fatalf("slow gate: want a timeout, got %+v", res[2])
	}
}

// processSpec is a valid process-platform spec resolved from YAML, as the
// CLI sends one: the worker re-validates every spec it is given.
func processSpec(t *testing.T, dir string) spec.Service {
	t.Helper()
	f, err := spec.Parse("api.yaml", []byte("service: api\nrun: {command: [./api], ports: {blue: 18001, green: 18002}}\nrouter: {caddy: {listen: 127.0.0.1:18000}}\nenvironments: {test: {}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Resolve("test")
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
	return *s
}

func TestBuildAndGateCommandsGetAMinimalEnvironmentPlusWhatTheSpecNames(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_WORKER_SECRET", "s3cret-of-the-worker")
	t.Setenv("SWITCHYARD_TEST_GOFLAGS", "-mod=mod")
	env, a := activityEnv()
	dir := t.TempDir()
	s := processSpec(t, dir)
	s.Build = spec.Build{Timeout: spec.Duration(time.Minute), Command: []string{"sh", "-c", "env > build.env"}, Env: []string{"SWITCHYARD_TEST_GOFLAGS"}}
	s.Gates = []spec.Gate{{Name: "env", Command: []string{"sh", "-c", "env > gate.env"}, Timeout: spec.Duration(time.Minute)}}
	if _, err := env.ExecuteActivity(a.Build, BuildInput{Spec: &s, Version: "v9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(a.Gates, GatesInput{Spec: &s, Version: "v9", Artifact: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"build.env", "gate.env"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		if strings.Contains(got, "s3cret-of-the-worker") {
			t.Errorf("%s: the worker's secret reached the command:\n%s", f, got)
		}
		for _, want := range []string{"VERSION=v9\n", "SWITCHYARD_TEST_GOFLAGS=-mod=mod\n", "PATH="} {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q:\n%s", f, want, got)
			}
		}
	}
}

func TestAFailedBuildsOutputIsRedactedBeforeItLeavesTheWorker(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_REGISTRY_PASS", "p4ssw0rd-of-the-registry")
	env, a := activityEnv()
	s := processSpec(t, t.TempDir())
	s.Build = spec.Build{Timeout: spec.Duration(time.Minute), Env: []string{"SWITCHYARD_TEST_REGISTRY_PASS"},
		Command: []string{"sh", "-c", "echo login with $SWITCHYARD_TEST_REGISTRY_PASS at https://bot:tok3n@registry.example/v2; exit 1"}}
	s.Gates = []spec.Gate{{Name: "leaky", Command: []string{"sh", "-c", "echo $SWITCHYARD_TEST_REGISTRY_PASS; exit 1"}, Timeout: spec.Duration(time.Minute)}}
	_, err := env.ExecuteActivity(a.Build, BuildInput{Spec: &s, Version: "v1"})
	if err == nil || strings.Contains(err.Error(), "p4ssw0rd") || strings.Contains(err.Error(), "tok3n") ||
		!strings.Contains(err.Error(), "login with [redacted $SWITCHYARD_TEST_REGISTRY_PASS] at https://registry.example/v2") {
		t.Fatalf("build error: %v", err)
	}
	v, err := env.ExecuteActivity(a.Gates, GatesInput{Spec: &s, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	var res []rollout.CheckResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || strings.Contains(res[0].Detail, "p4ssw0rd") || !strings.Contains(res[0].Detail, "[redacted $SWITCHYARD_TEST_REGISTRY_PASS]") {
		t.Fatalf("gate result: %+v", res)
	}
}

// activityEnv is the SDK's activity test environment with the activities registered.
func activityEnv() (*testsuite.TestActivityEnvironment, *Activities) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	a := &Activities{}
	env.RegisterActivity(a)
	return env, a
}

// Adapters say themselves whether an error is permanent: classify knows
// none of their types, and a router's weights that did not land are retried.
func TestClassifyTrustsTheAdaptersOwnWordOnRetrying(t *testing.T) {
	for _, err := range []error{
		&platform.BadInputError{Err: errors.New("bad image")},
		&kube.PermanentError{Err: errors.New("forbidden")},
		&awsapi.Refused{Err: errors.New("AccessDenied")},
		fmt.Errorf("wrapped: %w", &rollout.PermanentError{Err: errors.New("cannot split")}),
	} {
		var app *temporal.ApplicationError
		if !errors.As(classify(err), &app) || !app.NonRetryable() {
			t.Errorf("%T (%v) is retried", err, err)
		}
	}
	for _, err := range []error{
		&router.MismatchError{Kind: "haproxy", Set: rollout.Weights{Green: 10, Blue: 90}},
		errors.New("connection refused"),
	} {
		if got := classify(err); got != err {
			t.Errorf("%v became %v: it should be retried", err, got)
		}
	}
}
