package test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/internal/rollout"
)

// browser starts Debian's Chromium headless, driven over the DevTools
// protocol, with the flags this machine's closed network needs.
func browser(t *testing.T, bin string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// pageText polls the page's visible text until it holds every want or
// the wait runs out, and returns the last text read and what was missing.
func pageText(ctx context.Context, wait time.Duration, wants ...string) (text, missing string) {
	deadline := time.Now().Add(wait)
	for {
		var err error
		text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		missing = ""
		for _, w := range wants {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if err == nil && missing == "" {
			return text, ""
		}
		if time.Now().After(deadline) {
			return text, missing
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestWebUIShowsTheRolloutFoundByItsSearchAttributes(t *testing.T) {
	bin := chromium(t)
	state := t.TempDir()
	port, uiPort := freePort(t), freePort(t)
	startDevUI(t, state, port, uiPort)
	e := newEnv(t, opts{router: "embedded", ownCaddy: true, noWorker: true, bake: 5 * time.Minute,
		address: fmt.Sprintf("127.0.0.1:%d", port)})
	e.starter.TaskQueue = "dev-q"
	e.given("v1")
	run := e.start("v2")
	e.waitFor("v2 baking at 10%", func(st *starterStatus) bool {
		return st.Phase == rollout.PhaseShifting && st.Weights.Of(st.Target) == 10 && !st.BakeEndsAt.IsZero()
	})
	defer func() {
		_, _ = e.starter.Control(context.Background(), e.svc.Name, e.svc.Environment, "abort", map[string]string{"reason": "test over"})
	}()

	ui := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	query := fmt.Sprintf(`SwitchyardService="%s" AND SwitchyardPhase="shifting" AND SwitchyardTrafficPercent=10`, e.svc.Name)
	ctx := browser(t, bin)
	// visibility is eventually consistent: load the list again until the rollout is in it
	var text, missing string
	for try := 0; try < 4; try++ {
		if _, err := chromedp.Run(ctx, chromedp.Navigate(ui+"/namespaces/default/workflows?query="+url.QueryEscape(query))); err != nil {
			t.Fatal(err)
		}
		if text, missing = pageText(ctx, 15*time.Second, run.GetID(), "Running", "Deployment"); missing == "" {
			break
		}
	}
	if missing != "" {
		t.Fatalf("the Web UI's list for %s never showed %q; its text:\n%s", query, missing, text)
	}
	// open it, as a person would: click its ID
	link := chromedp.CSS(fmt.Sprintf(`a[href*="%s"]`, url.PathEscape(run.GetID())))
	if _, err := chromedp.Run(ctx, chromedp.Click(link)); err != nil {
		t.Fatalf("click %s: %v", link, err)
	}
	if text, missing = pageText(ctx, 45*time.Second, run.GetID(), run.GetRunID(), "RUNNING", "Deployment", "dev-q"); missing != "" {
		t.Fatalf("the rollout's page never showed %q; its text:\n%s", missing, text)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SWITCHYARD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "webui-rollout.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 10_000 {
		t.Fatalf("a screenshot of only %d bytes", len(png))
	}
	t.Logf("Web UI: the list for %s showed %s; clicked, its page shows the run ID, RUNNING, Deployment and task queue dev-q; screenshot %s (%d bytes)",
		query, run.GetID(), shot, len(png))
}
