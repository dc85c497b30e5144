package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// oidcProvider runs a real OpenID Connect provider: the zitadel/oidc
// library's example OP (`make oidc-bins`), with a login form, discovery,
// JWKS, the authorization code flow with PKCE, and the users given.
type oidcProvider struct{ issuer string }

func startOIDCProvider(t *testing.T, redirect string, users map[string]string) *oidcProvider {
	t.Helper()
	bin, _ := filepath.Abs(filepath.Join(toolsDir, "oidc", "server"))
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no OIDC provider in bin/tools/oidc: run `make oidc-bins` (.ci/run does)")
	}
	dir := t.TempDir()
	var list []string
	for login, email := range users {
		list = append(list, fmt.Sprintf(`%q: {"ID": %q, "Username": %q, "Password": "pw-%s", "FirstName": %q, "LastName": "Test", "Email": %q, "EmailVerified": true, "PreferredLanguage": "en"}`,
			login, login, login, login, login, email))
	}
	users_ := filepath.Join(dir, "users.json")
	if err := os.WriteFile(users_, []byte("{"+strings.Join(list, ",")+"}"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "USERS_FILE="+users_, "REDIRECT_URI="+redirect)
	log, _ := os.Create(filepath.Join(dir, "oidc.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &oidcProvider{issuer: fmt.Sprintf("http://localhost:%d/", port)}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(p.issuer + ".well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "oidc.log"))
			t.Fatalf("the OIDC provider did not start: %v\n%s", err, b)
		}
	}
}

// signInWithOIDC opens the dashboard page in a new browser, is sent to the
// provider's login form, signs in there, and lands back signed in.
func signInWithOIDC(t *testing.T, bin, page, login, email string) context.Context {
	t.Helper()
	ctx := browser(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "Username", "Password"); missing != "" {
		t.Fatalf("the dashboard did not send the browser to the provider's login:\n%s", text)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#username`), login), chromedp.SendKeys(chromedp.CSS(`#password`), "pw-"+login),
		chromedp.Click(chromedp.CSS(`button[type=submit]`))); err != nil {
		t.Fatalf("sign in as %s at the provider: %v", login, err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "signed in as "+email); missing != "" {
		t.Fatalf("after the provider's sign-in the dashboard does not say %q:\n%s", email, text)
	}
	return ctx
}

// TestDashboardSignsInWithOIDCAndHoldsApprovalsToRolesApproversAndTwoPeople:
// the dashboard signs people in with a real OIDC provider (in a real
// browser); reading needs a sign-in; a forged callback signs nobody in.
// Production's approval is held to the roles file (Mallory has no role),
// to the release's approvers (Bob is not one), and to two people (Alice
// started the release); Carol, a release manager and an approver, approves,
// and the release records her verified e-mail.
func TestDashboardSignsInWithOIDCAndHoldsApprovalsToRolesApproversAndTwoPeople(t *testing.T) {
	bin := chromium(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	idp := startOIDCProvider(t, base+"/auth/callback", map[string]string{
		"alice": "alice@example.com", "bob": "bob@example.com", "carol": "carol@example.com", "mallory": "mallory@example.com"})

	e := newReleaseEnv(t, "    approval: {required: true, timeout: 10m, onTimeout: abort, approvers: [alice@example.com, carol@example.com], twoPeople: true}\n")
	name := e.release().Name
	run, err := e.starter.StartRelease(context.Background(), e.release(), map[string]string{e.svc("backend"): "v1", e.svc("frontend"): "v1"}, "", "alice@example.com", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(workflows.ReleaseAwaitingApproval)

	rolesFile := filepath.Join(t.TempDir(), "roles.yaml")
	if err := os.WriteFile(rolesFile, []byte("roles:\n  - {name: release managers, members: [alice@example.com, bob@example.com, carol@example.com], actions: [approve, freeze], services: [\"*\"], environments: [\"*\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	roles, err := access.Load(rolesFile)
	if err != nil {
		t.Fatal(err)
	}
	d := &dashboard.Server{Starter: e.starter, Every: 200 * time.Millisecond, Roles: roles,
		OIDC: &dashboard.OIDC{Issuer: idp.issuer, ClientID: "web", ClientSecret: "secret", RedirectURL: base + "/auth/callback"}}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	requireSignInFirst(t, base, name)

	page := base + "/release/" + name
	approve := func(ctx context.Context) string { return approveFromDashboard(t, ctx, base, name) }
	for _, c := range []struct{ login, want string }{
		{"mallory", "mallory@example.com may not approve " + name + " in production: no role in " + rolesFile + " grants it"},
		{"bob", "bob@example.com (dashboard) may not approve production (approvers: alice@example.com, carol@example.com)"},
		{"alice", "alice@example.com started release " + name + " and may not also approve production: it needs a second person"},
	} {
		ctx := signInWithOIDC(t, bin, page, c.login, c.login+"@example.com")
		if text := approve(ctx); !strings.Contains(text, c.want) {
			t.Fatalf("%s approving: the page lacks %q:\n%s", c.login, c.want, text)
		}
		t.Logf("%s approving production: refused: %s", c.login, c.want)
	}
	if st, err := e.starter.ReleaseStatus(context.Background(), name); err != nil || st.Phase != workflows.ReleaseAwaitingApproval {
		t.Fatalf("a refused approval moved the release: %+v %v", st, err)
	}
	ctx := signInWithOIDC(t, bin, page, "carol", "carol@example.com")
	screenshot(t, ctx, "dashboard-oidc-signed-in")
	if text := approve(ctx); !strings.Contains(text, "Done:") {
		t.Fatalf("carol approving: %s", text)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := e.starter.WaitRelease(wctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != workflows.ReleasePromoted || st.Approvals[len(st.Approvals)-1].By != "carol@example.com (dashboard)" {
		t.Fatalf("after carol's approval: %s %+v", st.Phase, st.Approvals)
	}
	record(t, historyOf(t, e.starter.C, run), "release_two_people_refused_then_approved_by_oidc_identity.json")
	t.Logf("carol@example.com approved production (identity from the OIDC provider): release %s", st.Phase)
}

// requireSignInFirst: reading needs a sign-in; a callback nobody started
// signs nobody in; a typed name is no sign-in once OIDC is on.
func requireSignInFirst(t *testing.T, base, name string) {
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(base + "/release/" + name)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/signin") {
		t.Fatalf("a page without a sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = noFollow.Get(base + "/auth/callback?state=forged&code=forged")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("a forged callback: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp, err = http.PostForm(base+"/signin", map[string][]string{"name": {"carol@example.com"}, "token": {"anything"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a typed name with OIDC on: %d", resp.StatusCode)
	}

}

// approveFromDashboard asks to approve production from the dashboard and
// returns the text of the page that answers: the confirmation refused, or
// the result.
func approveFromDashboard(t *testing.T, ctx context.Context, base, name string) string {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(base+"/act?do=approve&release="+name+"&env=production")); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 5*time.Second, "Reason"); missing != "" {
		return text // refused before the confirmation
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#reason"), "staging looked fine"), chromedp.Click(chromedp.CSS("#confirm"))); err != nil {
		t.Fatal(err)
	}
	var text string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if text, _ = pageText(ctx, 0); strings.Contains(text, "Done:") || strings.Contains(text, "may not") {
			break
		}
	}
	return text
}
