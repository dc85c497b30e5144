package test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/starter"
)

func chromium(t *testing.T) string {
	for _, b := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (apt-get install chromium); .ci/run installs it")
	return ""
}

// screenshot saves the page as name.png in $SWITCHYARD_SCREENSHOTS (or the
// test's temp dir) and logs where.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SWITCHYARD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}

func evalString(t *testing.T, ctx context.Context, js string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDashboardShowsTheWeightsChangeAsTheStepsLandWithoutReload: the
// overview, in headless Chromium, shows a running rollout's traffic share
// move through the steps, pushed by the server (the page is never
// reloaded); the rollout page shows its steps and events; an unknown
// service is a 404 page; every answer carries the security headers.
func TestDashboardShowsTheWeightsChangeAsTheStepsLandWithoutReload(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t, opts{bake: 2 * time.Second})
	if o := e.deploy("v1"); o.Kind != "" {
		t.Fatalf("v1: %s", o.Reason)
	}
	srv := httptest.NewServer((&dashboard.Server{Starter: e.starter, WebUI: "http://127.0.0.1:8233", Every: 200 * time.Millisecond}).Handler())
	// the pages' event streams stay open: close them, or Close waits for them
	defer func() { srv.CloseClientConnections(); srv.Close() }()
	ctx := browser(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	key := e.svc.Name + "/test"
	if text, missing := pageText(ctx, 20*time.Second, e.svc.Name, "v1", "promoted"); missing != "" {
		t.Fatalf("the overview lacks %q:\n%s", missing, text)
	}
	evalString(t, ctx, `window.notReloaded = "yes"; "ok"`)

	run := e.start("v2")
	row := fmt.Sprintf(`(function(){ const r = document.querySelector('tr[data-key=%q]'); return r ? r.innerText : ""; })()`, key)
	seen := map[string]bool{}
	var order []string
	deadline := time.Now().Add(90 * time.Second)
	shot := false
	for time.Now().Before(deadline) {
		text := evalString(t, ctx, row)
		if strings.Contains(text, "v2") {
			for _, p := range []string{"10%", "25%", "50%", "75%"} {
				if strings.Contains(text, p) && strings.Contains(text, "shifting") && !seen[p] {
					seen[p] = true
					order = append(order, p)
				}
			}
			if seen["50%"] && !shot {
				screenshot(t, ctx, "dashboard-overview")
				shot = true
			}
			if strings.Contains(text, "promoted") {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Fatalf("the overview showed the shares %v of v2 while it rolled out: want at least 3 of 10/25/50/75 %%; row now: %s", order, evalString(t, ctx, row))
	}
	if r := evalString(t, ctx, `window.notReloaded || "reloaded"`); r != "yes" {
		t.Fatal("the overview page was reloaded: the updates must be pushed into it")
	}
	if n := evalString(t, ctx, `document.body.dataset.updates || "0"`); n == "0" {
		t.Fatal("no server-sent update reached the page")
	}
	t.Logf("the overview showed v2's share go %v, then promoted, without a reload (%s pushed updates)", order, evalString(t, ctx, `document.body.dataset.updates`))
	if _, err := e.starter.Wait(context.Background(), run); err != nil {
		t.Fatal(err)
	}

	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/rollout/"+key)); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "v2", "promoted", "step 5 of 5", "Events", "step 3/5", "Temporal Web UI"); missing != "" {
		t.Fatalf("the rollout page lacks %q:\n%s", missing, text)
	}
	screenshot(t, ctx, "dashboard-rollout")

	resp, err := http.Get(srv.URL + "/rollout/no-such-service/test")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown service's page answered %s, want 404", resp.Status)
	}
	for _, h := range []struct{ name, want string }{{"X-Frame-Options", "DENY"}, {"X-Content-Type-Options", "nosniff"}, {"Content-Security-Policy", "frame-ancestors 'none'"}} {
		if got := resp.Header.Get(h.name); !strings.Contains(got, h.want) {
			t.Errorf("%s: %q, want %q", h.name, got, h.want)
		}
	}
}

// TestDashboardSaysWhenTemporalIsDownAndRecovers stops the Temporal server
// (`switchyard dev` on its SQLite file) under an open overview: the page
// says Temporal is unreachable, and shows the services again once it is back.
func TestDashboardSaysWhenTemporalIsDownAndRecovers(t *testing.T) {
	bin := chromium(t)
	d := startDevProc(t)
	e := newEnv(t, opts{address: d.hostPort, bake: 0, noBake: true, noWorker: true})
	startWorker(t, e)
	if o := e.deploy("v1"); o.Kind != "" {
		t.Fatalf("v1: %s", o.Reason)
	}
	srv := httptest.NewServer((&dashboard.Server{Starter: &starter.Starter{C: e.starter.C, TaskQueue: e.queue}, Every: 200 * time.Millisecond}).Handler())
	// the pages' event streams stay open: close them, or Close waits for them
	defer func() { srv.CloseClientConnections(); srv.Close() }()
	ctx := browser(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, e.svc.Name, "promoted"); missing != "" {
		t.Fatalf("the overview lacks %q:\n%s", missing, text)
	}
	d.stop()
	if text, missing := pageText(ctx, 30*time.Second, "Temporal is unreachable"); missing != "" {
		t.Fatalf("with Temporal down the overview does not say so:\n%s", text)
	}
	screenshot(t, ctx, "dashboard-temporal-down")
	d.start()
	text, missing := pageText(ctx, 60*time.Second, e.svc.Name, "promoted")
	if missing != "" || strings.Contains(text, "unreachable") {
		t.Fatalf("after Temporal came back the overview did not recover:\n%s", text)
	}
}
