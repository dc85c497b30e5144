package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// Acting: a viewer signs in (with the dashboard's token and a name, in
// dev); the session is kept on the server (session.go) with its own CSRF
// token, which every form carries and a page on another site cannot read.
// Every action goes through a confirmation page with a reason field, and
// is recorded in the run as "NAME (dashboard)".

const sessionCookie = "switchyard_session"

// canAct says whether anyone may sign in and act here.
func (s *Server) canAct() bool { return s.Token != "" || s.OIDC != nil }

// viewer is who the request's session names, "" for nobody.
func (s *Server) viewer(r *http.Request) string {
	if ses := s.session(r); ses != nil {
		return ses.viewer
	}
	return ""
}

// csrfOK checks a form's CSRF token against its session's.
func (s *Server) csrfOK(r *http.Request) bool {
	ses := s.session(r)
	return ses != nil && sameSite(r) && hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(ses.csrf))
}

// action is one thing the dashboard can do.
type action struct {
	Grant    string // what a role must grant (internal/access)
	Do       string
	Label    string // the button
	Question string // the confirmation, with %s for what it acts on
	Reason   bool   // a reason is required
	Release  bool   // it acts on a release, not a service
}

var actions = []action{
	{access.Pause, "pause", "Pause", "Pause the rollout of %s? The bake clock stops until it is resumed.", false, false},
	{access.Pause, "resume", "Resume", "Resume %s?", false, false},
	{access.Abort, "abort", "Abort", "Abort the rollout of %s? All traffic goes back to the stable slot at once.", true, false},
	{access.Promote, "promote", "Skip this bake", "Skip the current bake of %s and go to the next step now?", false, false},
	{access.Promote, "promote-full", "Promote to 100%", "Promote %s to 100%% of traffic now, skipping the remaining steps?", true, false},
	{access.Rollback, "rollback-immediate", "Roll back now", "Roll %s back to its previous version now, in one weight change?", true, false},
	{access.Rollback, "rollback-gradual", "Roll back gradually", "Roll %s back to its previous version gradually, over the spec's rollback duration?", true, false},
	{access.Rollback, "rollback-swap", "Swap back", "Swap %s back to its previous slot, keeping the bad one running for investigation?", true, false},
	{access.Rollback, "escalate", "Roll back the rest now", "Turn the gradual rollback of %s into an immediate one?", false, false},
	{access.Approve, "approve", "Approve", "Approve release %s into the environment it waits at?", false, true},
	{access.Approve, "reject", "Reject", "Reject release %s at the environment it waits at? The release ends.", true, true},
	{access.Freeze, "freeze", "Freeze", "Freeze release %s? New releases and deploys of its services are refused, and a running release pauses before its next step.", true, true},
	{access.Freeze, "unfreeze", "Unfreeze", "Unfreeze release %s?", false, true},
}

// actData is the confirmation page and the result page.
type actData struct {
	pageData
	A                     action
	Service, Env, Release string
	Target                string // what it acts on, in words
	Back                  string // the page to go back to
	Error, Done           string
}

// forbidden answers 403 with a page that says why.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, why string) {
	d := pageData{View: view{Title: "Not allowed", Body: "notfound-body", Data: why, Code: http.StatusForbidden}, CanAct: s.Token != "", Path: r.URL.RequestURI()}
	d.Live = live{D: why}
	s.render(w, http.StatusForbidden, "page.html", d)
}

// request reads and checks an action's target from a query or a form.
func (s *Server) request(r *http.Request) (actData, string) {
	do := r.FormValue("do")
	i := slices.IndexFunc(actions, func(a action) bool { return a.Do == do })
	if i < 0 {
		return actData{}, fmt.Sprintf("do %q: not an action", do)
	}
	d := actData{A: actions[i], Service: r.FormValue("service"), Env: r.FormValue("env"), Release: r.FormValue("release")}
	check := map[string]string{"env": d.Env}
	if d.A.Release {
		check["release"] = d.Release
		if d.A.Do != "approve" && d.A.Do != "reject" {
			delete(check, "env")
		}
		d.Target, d.Back = d.Release, "/release/"+d.Release
	} else {
		check["service"] = d.Service
		d.Target, d.Back = d.Service+" in "+d.Env, "/rollout/"+d.Service+"/"+d.Env
	}
	for _, f := range []string{"service", "release", "env"} {
		if v, ok := check[f]; ok && !name.MatchString(v) {
			return actData{}, fmt.Sprintf("%s %q: a name is letters, digits, '.', '_' and '-'", f, v)
		}
	}
	return d, ""
}

// confirm shows the confirmation page of an action: what it will do, a
// reason field, and the button.
func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	if d, ok := s.actRequest(w, r, false); ok {
		s.render(w, http.StatusOK, "act.html", d)
	}
}

// actRequest reads an action's request: a signed-in viewer (and, for one
// that acts, the form's CSRF token from the dashboard's own page) and a
// known action on a well-formed target; otherwise it answers and says no.
func (s *Server) actRequest(w http.ResponseWriter, r *http.Request, acting bool) (actData, bool) {
	ses := s.session(r)
	if ses == nil {
		s.forbidden(w, r, s.notSignedIn())
		return actData{}, false
	}
	viewer := ses.viewer
	if acting && !s.csrfOK(r) {
		s.forbidden(w, r, "the form's CSRF token is missing or wrong: act from the dashboard's own pages")
		return actData{}, false
	}
	d, bad := s.request(r)
	if bad != "" {
		s.render(w, http.StatusBadRequest, "page.html", pageData{View: view{Title: "Bad request", Body: "notfound-body", Data: bad}, Live: live{D: bad}})
		return actData{}, false
	}
	target, env := d.Service, d.Env
	if d.A.Release {
		target = d.Release
	}
	if err := s.Roles.Allows(access.Identity{Subject: viewer, Groups: ses.groups}, d.A.Grant, target, env); err != nil {
		s.forbidden(w, r, err.Error())
		return actData{}, false
	}
	d.pageData = pageData{View: view{Title: d.A.Label}, Viewer: viewer, CSRF: ses.csrf, CanAct: true}
	return d, true
}

func (s *Server) notSignedIn() string {
	if s.OIDC != nil {
		return "sign in to act (with your organisation's identity provider)"
	}
	if s.Token == "" {
		return "this dashboard is read-only: start it with SWITCHYARD_DASHBOARD_TOKEN set (or --token-file) to allow actions"
	}
	return "sign in to act (the dashboard's token and your name)"
}

// sameSite refuses a form posted from another site, where the browser says so.
func sameSite(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "same-origin" || site == "none"
}

// act carries an action out: signed in, the form's CSRF token right, the
// reason given when one is needed.
func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	d, ok := s.actRequest(w, r, true)
	if !ok {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if d.A.Reason && reason == "" {
		d.Error = "reason: say why, for the record"
		s.render(w, http.StatusBadRequest, "act.html", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	done, err := s.do(ctx, d, reason, d.Viewer+" (dashboard)")
	if err != nil {
		d.Error = err.Error()
		code := http.StatusConflict
		var badIn *starter.BadInputError
		if errors.As(err, &badIn) {
			code = http.StatusBadRequest
		}
		s.render(w, code, "act.html", d)
		return
	}
	d.Done = done
	s.render(w, http.StatusOK, "act.html", d)
}

// do sends what the CLI would send for the action.
func (s *Server) do(ctx context.Context, d actData, reason, by string) (string, error) {
	st := s.Starter
	switch d.A.Do {
	case "pause", "resume":
		if st.RollbackRunning(ctx, d.Service, d.Env) {
			rep, err := st.RollbackControl(ctx, d.Service, d.Env, d.A.Do, workflows.ControlRequest{By: by, Reason: reason})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("the rollback is %s; %s", rep.Phase, rep.Weights), nil
		}
		return status(st.Control(ctx, d.Service, d.Env, d.A.Do, workflows.ControlRequest{By: by, Reason: reason}))
	case "abort":
		return status(st.Control(ctx, d.Service, d.Env, workflows.Abort, workflows.AbortRequest{Reason: reason, By: by}))
	case "promote", "promote-full":
		return status(st.Control(ctx, d.Service, d.Env, workflows.Promote, workflows.PromoteRequest{Full: d.A.Do == "promote-full", By: by}))
	case "rollback-immediate", "rollback-gradual", "rollback-swap":
		svc, err := st.DeployedSpec(ctx, d.Service, d.Env)
		if err != nil {
			return "", err
		}
		strategy := strings.TrimPrefix(d.A.Do, "rollback-")
		run, err := st.Rollback(ctx, svc, workflows.Strategy(strategy), reason, by)
		if err != nil {
			return "", err
		}
		if workflows.Strategy(strategy) == workflows.Gradual {
			return "the gradual rollback started; this rollout's page follows it", nil
		}
		rep, err := st.WaitRollback(ctx, run)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("rolled back to %s in %s; %s", rep.PreviousVersion, rep.Duration().Round(time.Millisecond), rep.Weights), nil
	case "escalate":
		rep, err := st.RollbackControl(ctx, d.Service, d.Env, workflows.Escalate, workflows.ControlRequest{By: by, Reason: reason})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("the rollback is %s; %s", rep.Phase, rep.Weights), nil
	case "approve", "reject":
		name := workflows.Approve
		if d.A.Do == "reject" {
			name = workflows.Reject
		}
		rs, err := st.DecideRelease(ctx, d.Release, name, workflows.ApprovalRequest{Environment: d.Env, Reason: reason, By: by})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("release %s is %s", rs.Name, rs.Phase), nil
	case "freeze":
		rs, err := st.ReleaseStatus(ctx, d.Release)
		if err != nil {
			return "", err
		}
		var services []string
		for _, sv := range rs.Services {
			if !slices.Contains(services, sv.Service) {
				services = append(services, sv.Service)
			}
		}
		slices.Sort(services)
		if err := st.Freeze(ctx, d.Release, services, reason, by); err != nil {
			return "", err
		}
		return fmt.Sprintf("release %s is frozen (%s)", d.Release, strings.Join(services, ", ")), nil
	case "unfreeze":
		if err := st.Unfreeze(ctx, d.Release, by); err != nil {
			return "", err
		}
		return fmt.Sprintf("release %s is no longer frozen", d.Release), nil
	}
	return "", fmt.Errorf("do %q: not an action", d.A.Do)
}

func status(st *workflows.Status, err error) (string, error) {
	if err != nil {
		return "", err
	}
	p := string(st.Phase)
	if st.Paused {
		p += " (paused)"
	}
	return fmt.Sprintf("the rollout is %s; %s", p, st.Weights), nil
}

// signinData is the sign-in page.
type signinData struct {
	pageData
	Next, Name, Error string
}

func (s *Server) signinForm(w http.ResponseWriter, r *http.Request) {
	if s.OIDC != nil {
		s.oidcBegin(w, r)
		return
	}
	s.render(w, http.StatusOK, "signin.html", signinData{pageData: pageData{View: view{Title: "Sign in"}, CanAct: s.Token != ""}, Next: local(r.FormValue("next"))})
}

func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	d := signinData{pageData: pageData{View: view{Title: "Sign in"}, CanAct: s.Token != ""}, Next: local(r.PostFormValue("next")), Name: strings.TrimSpace(r.PostFormValue("name"))}
	switch {
	case s.Token == "" || s.OIDC != nil: // with OIDC, nobody signs in with a typed name
		s.forbidden(w, r, s.notSignedIn())
		return
	case !sameSite(r):
		s.forbidden(w, r, "sign in from the dashboard's own page")
		return
	case subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), []byte(s.Token)) != 1:
		d.Error = "token: not the dashboard's token"
		s.render(w, http.StatusForbidden, "signin.html", d)
		return
	case d.Name == "" || len(d.Name) > 64 || strings.IndexFunc(d.Name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		d.Error = "name: who you are, for the record (up to 64 printable characters)"
		s.render(w, http.StatusBadRequest, "signin.html", d)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.sessions.start(d.Name, s.SessionTTL),
		Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(s.SessionTTL.Seconds())})
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	if s.session(r) != nil && !s.csrfOK(r) {
		s.forbidden(w, r, "the form's CSRF token is missing or wrong: sign out from the dashboard's own pages")
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.end(c.Value) // the cookie is worth nothing from now on, wherever a copy is
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// local keeps a return address on this server: a path of this server's
// pages and nothing a browser could read as another host (browsers drop
// tabs and newlines, so "/\t/evil.example" is "//evil.example" to them).
func local(next string) string {
	if len(next) > 512 || strings.IndexFunc(next, func(c rune) bool { return c <= ' ' || c == '\\' || c == 0x7f || !unicode.IsPrint(c) }) >= 0 {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(next, "//") {
		return "/"
	}
	return u.RequestURI()
}
