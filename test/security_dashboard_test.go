package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/starter"
)

// TestTheDashboardRefusesTheAttacksOfIssue22 attacks a real dashboard over
// the real Temporal server: a replayed session and CSRF token after sign-out,
// an expired session, open redirects after sign-in, a 50 MB sign-in body,
// 1,000 live streams from one client (with distinct query strings), an
// unbounded history period. Each is refused, and the dashboard's overview
// stays responsive during the flood (its p99 is logged).
func TestTheDashboardRefusesTheAttacksOfIssue22(t *testing.T) {
	c := dial(t)
	d := &dashboard.Server{Starter: &starter.Starter{C: c, TaskQueue: "q-dashboard-attacks"}, Token: dashToken, Every: 200 * time.Millisecond, SessionTTL: 3 * time.Second}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	base, stop := serveOn(t, srv)
	defer stop()
	a := attacker{t: t, base: base}
	a.openRedirects()
	bo := a.replaySessions()

	// a session expires on the server, whatever the cookie says
	time.Sleep(3200 * time.Millisecond)
	if code, _ := a.get(bo, "/act?do=freeze&release=shop"); code != http.StatusForbidden {
		t.Fatalf("a session past its TTL still acts: %d", code)
	}
	t.Logf("expired session: 403")

	// a 50 MB sign-in body is refused before it is read
	big := bytes.Repeat([]byte("a"), 50<<20)
	start := time.Now()
	resp, err := http.Post(base+"/signin", "application/x-www-form-urlencoded", bytes.NewReader(append([]byte("name=x&token="), big...)))
	if err == nil {
		resp.Body.Close()
	}
	if err == nil && resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 50 MB sign-in: %d, want 413", resp.StatusCode)
	}
	t.Logf("50 MB sign-in body: refused in %s (%v)", time.Since(start).Round(time.Millisecond), statusOr(resp, err))

	// history periods are bounded
	if code, body := a.get(http.DefaultClient, "/history?since=100000d"); code != http.StatusBadRequest || !strings.Contains(body, "from 1m to 90d") {
		t.Fatalf("since=100000d: %d", code)
	}
	if code, _ := a.get(http.DefaultClient, "/events?page=/nosuch/page"); code != http.StatusBadRequest {
		t.Fatalf("a stream for a made-up page: %d, want 400", code)
	}
	a.streamFlood()
}

// attacker is a client of the dashboard under attack.
type attacker struct {
	t    *testing.T
	base string
}

// noRedirect is a client that shows a redirect instead of following it.
func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (a attacker) post(cl *http.Client, path string, form url.Values) *http.Response {
	a.t.Helper()
	resp, err := cl.PostForm(a.base+path, form)
	if err != nil {
		a.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func (a attacker) get(cl *http.Client, path string) (int, string) {
	a.t.Helper()
	resp, err := cl.Get(a.base + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// openRedirects: crafted next= addresses after sign-in each land on /.
func (a attacker) openRedirects() {
	t := a.t
	for _, next := range []string{"/\t/evil.example", "//evil.example", "https://evil.example/", "/\\evil.example", "/%2F/evil.example", "/\n/evil.example"} {
		jar, _ := cookiejar.New(nil)
		resp := a.post(noRedirect(jar), "/signin", url.Values{"name": {"Ana"}, "token": {dashToken}, "next": {next}})
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
			t.Fatalf("sign in with next=%q: %d, Location %q, want 303 to /", next, resp.StatusCode, loc)
		}
	}
	t.Logf("open redirect: 6 crafted next= addresses all sent to /")
}

// replaySessions signs in, takes the session and a form's CSRF token, signs
// out and replays both; another session's token is refused too. It returns
// the other session's client.
func (a attacker) replaySessions() *http.Client {
	t := a.t
	// sign in, take the session and a form's CSRF token, sign out, replay both
	jar, _ := cookiejar.New(nil)
	ana := noRedirect(jar)
	a.post(ana, "/signin", url.Values{"name": {"Ana"}, "token": {dashToken}, "next": {"/"}})
	u, _ := url.Parse(a.base)
	cookies := jar.Cookies(u)
	if len(cookies) != 1 || len(cookies[0].Value) < 40 || strings.Contains(cookies[0].Value, "Ana") {
		t.Fatalf("the session cookie should be an opaque random id: %+v", cookies)
	}
	code, body := a.get(ana, "/act?do=freeze&release=shop")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("confirmation page: %d\n%s", code, body)
	}
	csrf := m[1]
	// another session's CSRF token is no good for this one
	jar2, _ := cookiejar.New(nil)
	bo := noRedirect(jar2)
	a.post(bo, "/signin", url.Values{"name": {"Bo"}, "token": {dashToken}, "next": {"/"}})
	_, body2 := a.get(bo, "/act?do=freeze&release=shop")
	if m2 := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body2); m2 == nil || m2[1] == csrf {
		t.Fatalf("two sessions share a CSRF token")
	}
	if resp := a.post(bo, "/act", url.Values{"csrf": {csrf}, "do": {"unfreeze"}, "release": {"shop"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Bo used Ana's CSRF token: %d", resp.StatusCode)
	}
	if resp := a.post(ana, "/signout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	replay := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, a.base+"/act", strings.NewReader(url.Values{"csrf": {csrf}, "do": {"unfreeze"}, "release": {"shop"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookies[0])
	resp, err := replay.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the session and CSRF token replayed after sign-out: %d, want 403", resp.StatusCode)
	}
	t.Logf("replay after sign-out: 403; another session's CSRF token: 403")

	return bo
}

// streamFlood opens 1,000 live streams from one client, each a distinct
// query string: 16 are served, the rest refused, and the overview answers
// meanwhile.
func (a attacker) streamFlood() {
	t := a.t
	// 1,000 live streams from one client, each a distinct query string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range 1000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/events?page=%s", a.base, url.QueryEscape(fmt.Sprintf("/?x=%d", i))), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				return
			}
			go func() { <-ctx.Done(); resp.Body.Close() }()
		}()
	}
	wg.Wait()
	// the overview answers while the streams are held
	var took []time.Duration
	for range 40 {
		t0 := time.Now()
		if code, _ := a.get(http.DefaultClient, "/"); code != 200 {
			t.Fatalf("overview during the flood: %d", code)
		}
		took = append(took, time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(took)
	mu.Lock()
	defer mu.Unlock()
	if codes[http.StatusOK] != 16 || codes[http.StatusTooManyRequests] != 984 {
		t.Fatalf("1,000 streams from one client: %v, want 16 served and 984 refused (429)", codes)
	}
	t.Logf("1,000 streams from one client: %d served, %d refused (429); overview during them p50 %s, p99 %s",
		codes[200], codes[429], took[len(took)/2].Round(time.Microsecond), took[len(took)*99/100].Round(time.Microsecond))
}

func statusOr(resp *http.Response, err error) string {
	if err != nil {
		return "connection closed: " + err.Error()
	}
	return resp.Status
}

// serveOn serves srv on a free 127.0.0.1 port and returns its base URL.
func serveOn(t *testing.T, srv *http.Server) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }
}

// The shared token is for a dashboard on this machine only: serving it on
// another address needs OIDC.
func TestTheSharedTokenIsRefusedOffThisMachine(t *testing.T) {
	cmd := exec.Command(filepath.Join(bins, "switchyard"), "dashboard", "--listen", "0.0.0.0:0", "--address", server.HostPort)
	cmd.Env = append(os.Environ(), "SWITCHYARD_DASHBOARD_TOKEN="+dashToken)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "the shared token is for a dashboard on this machine") {
		t.Fatalf("a token dashboard on 0.0.0.0: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}
