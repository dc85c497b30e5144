package test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/load"
)

// The DORA figures, from the runs Temporal keeps: two promoted rollouts and
// one rolled back in the hour give 48 deploys a day, a change failure rate
// of 1/3, a time to restore, and the lead time from the commit times the
// deploys carried; the same in history --stats and on the worker's /metrics.
func TestDORAFiguresFromHistoryInStatsAndMetrics(t *testing.T) {
	e := newEnv(t, opts{noWorker: true, steps: []int{50, 100}})
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startWorkerFrom(t, e, bins+"/switchyard", "worker.log", "--metrics", metrics, "--dora-every", "1s", "--dora-window", "1h")
	now := time.Now()
	gen := load.Start(e.url, 100, 2*time.Minute) // traffic for the analysis to judge v3 on
	defer gen.Stop()
	for _, d := range []struct {
		version string
		ago     time.Duration
		code    int
	}{{"v1", 50 * time.Minute, 0}, {"v2", 10 * time.Minute, 0}, {"v3", 5 * time.Minute, 3}} {
		out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", d.version,
			"--commit-time", now.Add(-d.ago).Format(time.RFC3339))
		expect(t, out, code, d.code)
	}
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v4", "--commit-time", "yesterday")
	expect(t, out, code, 2, `--commit-time "yesterday": want RFC 3339`)

	out, code = cli(t, e, "history", "--stats", "--since", "1h")
	expect(t, out, code, 0, "DORA over the last 1h", "DEPLOYS/DAY", "CHANGE FAILURE", "TIME TO RESTORE", "LEAD TIME (p50)")
	var row string
	for _, l := range strings.Split(out[strings.Index(out, "DORA over"):], "\n") {
		if strings.HasPrefix(l, e.svc.Name+" ") {
			row = l
		}
	}
	f := strings.Fields(row)
	// SERVICE ENV DEPLOYS/DAY CFR TIME-TO-RESTORE LEAD (n)
	if len(f) != 7 || f[2] != "48.00" || f[3] != "33.3%" || f[4] == "-" || f[6] != "(2)" {
		t.Fatalf("DORA row %q (want 48.00 deploys a day, 33.3%% change failure, a time to restore, a lead time over 2):\n%s", row, out)
	}
	lead, err := time.ParseDuration(f[5])
	if err != nil || lead < 10*time.Minute || lead > 50*time.Minute {
		t.Fatalf("lead time %q: want between the two commits' 10 and 50 minutes", f[5])
	}
	t.Logf("DORA: %s", row)

	want := fmt.Sprintf(`switchyard_dora_change_failure_rate{environment="test",service="%s"} 0.333`, e.svc.Name)
	deadline := time.Now().Add(30 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + metrics + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, want) && strings.Contains(body, fmt.Sprintf(`switchyard_dora_deploys_per_day{environment="test",service="%s"} 48`, e.svc.Name)) {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	var dora []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "switchyard_dora") {
			dora = append(dora, l)
		}
	}
	t.Fatalf("the worker's /metrics lacks %q; its DORA lines:\n%s", want, strings.Join(dora, "\n"))
}
