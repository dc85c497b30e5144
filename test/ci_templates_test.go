package test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// The shipped GitHub Actions templates pass actionlint (as a library: its
// syntax, expression and untrusted-input rules), and no run: script
// splices a ${{ }} expression into the shell: inputs and contexts reach a
// script only through env:, so a reason like "$(curl evil)" stays text.
func TestTheShippedCIWorkflowsLintCleanAndSpliceNothingIntoTheShell(t *testing.T) {
	files, err := filepath.Glob("../deployments/ci/*.yml")
	if err != nil || len(files) < 4 {
		t.Fatalf("CI templates: %v %v", files, err)
	}
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		errs, err := l.Lint(f, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range errs {
			t.Errorf("actionlint: %s:%d:%d: %s [%s]", filepath.Base(f), e.Line, e.Column, e.Message, e.Kind)
		}
		for _, s := range spliced(t, src) {
			t.Errorf("%s: a run: script splices %s into the shell: pass it through env: instead", filepath.Base(f), s)
		}
	}
	// the check can fail: the old rollback template is refused
	old := []byte("on: {workflow_dispatch: {inputs: {reason: {required: true}}}}\njobs:\n  r:\n    runs-on: ubuntu-latest\n    steps:\n      - run: switchyard rollback api --reason \"${{ inputs.reason }}\"\n")
	if got := spliced(t, old); len(got) != 1 || got[0] != "${{ inputs.reason }}" {
		t.Fatalf("the splice check missed the old template's: %v", got)
	}
}

// spliced returns each ${{ }} expression inside a run: script.
func spliced(t *testing.T, src []byte) []string {
	t.Helper()
	w, errs := actionlint.Parse(src)
	if len(errs) > 0 {
		t.Fatalf("parse: %v", errs[0])
	}
	var out []string
	for _, j := range w.Jobs {
		for _, s := range j.Steps {
			run, ok := s.Exec.(*actionlint.ExecRun)
			if !ok || run.Run == nil {
				continue
			}
			for rest := run.Run.Value; ; {
				i := strings.Index(rest, "${{")
				if i < 0 {
					break
				}
				end := strings.Index(rest[i:], "}}")
				if end < 0 {
					end = len(rest) - i - 2
				}
				out = append(out, rest[i:i+end+2])
				rest = rest[i+end+2:]
			}
		}
	}
	return out
}

// The image build (make build-worker: -tags noserver, stripped) leaves the
// embedded Temporal server out and fits the 150 MB budget; it runs the
// worker, the dashboard and the CLI, and says what it lacks.
func TestTheWorkerBuildIsSmallAndSaysWhatItLacks(t *testing.T) {
	bin := filepath.Join(bins, "switchyard-worker")
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switchyard-worker: %.1f MB", float64(fi.Size())/1e6)
	if fi.Size() > 150e6 {
		t.Fatalf("the worker build is %.1f MB, over the 150 MB budget", float64(fi.Size())/1e6)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dev"}, 2, "built without the embedded Temporal server"},
		{[]string{"demo"}, 2, "use the full build (make build)"},
		{[]string{"validate", "../deployments/demo.yaml"}, 0, "demo.yaml: ok"},
		{[]string{"worker", "--help"}, 0, "--policy"},
		{[]string{"dashboard", "--help"}, 0, "--oidc-issuer"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("switchyard-worker %v: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}
}
