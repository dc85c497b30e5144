package test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// composeCmd finds Compose: the docker-compose program, or the docker CLI's plugin.
func composeCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return exec.Command(p, args...)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return exec.Command("docker", append([]string{"compose"}, args...)...)
	}
	t.Skip("neither docker-compose nor docker compose is installed (apt-get install docker-compose); .ci/run installs it")
	return nil
}

func TestTemporalComposeFileParsesAndNeedsItsPassword(t *testing.T) {
	cmd := composeCmd(t, "-f", "../docker-compose.temporal.yml", "config")
	cmd.Env = append(os.Environ(), "TEMPORAL_DB_PASSWORD=from-the-environment")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("compose config: %v\n%s", err, out)
	}
	cfg := string(out)
	for _, want := range []string{"postgres:16", "temporalio/server:1.32.1", "temporalio/admin-tools:1.32.1", "temporalio/ui:2.55.0",
		"update-schema", "SwitchyardTrafficPercent", "127.0.0.1"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the resolved config lacks %q", want)
		}
	}
	cmd = composeCmd(t, "-f", "../docker-compose.temporal.yml", "config", "-q")
	cmd.Env = append(os.Environ(), "TEMPORAL_DB_PASSWORD=")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TEMPORAL_DB_PASSWORD") {
		t.Fatalf("without TEMPORAL_DB_PASSWORD compose should refuse, naming it; got %v:\n%s", err, out)
	}
}
