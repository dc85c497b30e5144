// Package dashboard serves Switchyard's web dashboard: every service's
// latest rollout at a glance, each rollout's steps, weights, analysis and
// events, each release's services by environment, and the history with its
// figures, pushed to the page as they change. Everything is read from
// Temporal (visibility, the runs' status queries and results); it keeps
// nothing. With a token it also acts: the same Updates the CLI sends.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

//go:embed static templates
var files embed.FS

// Server is the dashboard over one Temporal namespace and task queue.
type Server struct {
	Starter *starter.Starter
	// WebUI is the Temporal Web UI's address, for links to a run ("" for none).
	WebUI     string
	Namespace string
	// Every is how often a view is re-read from Temporal for changes to
	// push (default 500 ms). One reader per view, however many pages show it.
	Every time.Duration
	// Token, when set, lets a viewer who signs in with it act (pause,
	// abort, roll back, approve, freeze, ...). Without it the dashboard is
	// read-only.
	Token string
	// MaxStreams bounds the live pages served at once (default 500), and
	// MaxStreamsPerClient those of one address (default 16): each is a
	// held connection, and a distinct view is a reader of Temporal.
	MaxStreams, MaxStreamsPerClient int
	// OIDC, when set, signs people in with an OpenID Connect provider (and
	// then every page needs a sign-in); Token is then not used.
	OIDC *OIDC
	// Roles, when set, is who may do what where; without it anyone signed in may.
	Roles *access.Policy
	// SessionTTL is how long a sign-in lasts (default 8 h); sign-out ends it at once.
	SessionTTL time.Duration
	tmpl       *template.Template
	hub        hub
	overview   overviewCache
	sessions   sessions
	streams    streams
}

// Handler returns the dashboard's routes, behind its security headers.
func (s *Server) Handler() http.Handler {
	if s.Every == 0 {
		s.Every = 500 * time.Millisecond
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.SessionTTL == 0 {
		s.SessionTTL = DefaultSessionTTL
	}
	if s.MaxStreams == 0 {
		s.MaxStreams = 500
	}
	if s.MaxStreamsPerClient == 0 {
		s.MaxStreamsPerClient = 16
	}
	s.hub.feeds = map[string]*feed{}
	s.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"ago":  ago,
		"pct":  func(n int64) string { return fmt.Sprintf("%d%%", n) },
		"rest": func(n int64) int64 { return 100 - n },
		"inc":  func(n int) int { return n + 1 },
		"num": func(v *float64) string {
			if v == nil {
				return "–"
			}
			return fmt.Sprintf("%.4g", *v)
		},
		"dur":   func(d time.Duration) string { return d.Round(time.Millisecond).String() },
		"share": func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
		"part":  s.part,
		"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Local().Format("2006-01-02 15:04:05")
		},
	}).ParseFS(files, "templates/*.html"))
	mux := http.NewServeMux()
	static, _ := fs.Sub(files, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /signin", s.signinForm)
	mux.HandleFunc("POST /signin", s.signin)
	mux.HandleFunc("GET /auth/callback", s.oidcCallback)
	mux.HandleFunc("POST /signout", s.signout)
	mux.HandleFunc("GET /act", s.confirm)
	mux.HandleFunc("POST /act", s.act)
	mux.HandleFunc("GET /", s.page)
	return headers(limitBodies(mux))
}

// maxBody bounds a request's body: the dashboard's forms are a few fields.
const maxBody = 16 << 10

// limitBodies refuses a large body before anything parses it.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.ServeHTTP(w, r)
	})
}

// headers sets what a page that can act on production needs: no framing,
// no sniffing, scripts and styles from this server only.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// view is what one address shows: a title, the template of its live part
// (the part pushed again when it changes) and that part's data.
type view struct {
	Title string
	Body  string
	Data  any
	Code  int
}

// live is what a view's live part is rendered from: the same for every
// viewer of it who may act, and for every one who may not.
type live struct {
	D   any
	Act bool
}

// name is what a service, environment or release name in an address may be.
var name = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// read reads the view an address shows.
func (s *Server) read(ctx context.Context, u *url.URL) view {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	bad := func(what string) view { return notFound(fmt.Sprintf("no %s", what)) }
	for _, p := range parts[min(1, len(parts)):] {
		if !name.MatchString(p) {
			return bad(fmt.Sprintf("page %s", u.Path))
		}
	}
	switch {
	case u.Path == "/":
		return view{Title: "Overview", Body: "overview-body", Data: s.overviewData(ctx)}
	case parts[0] == "rollout" && len(parts) == 3:
		d, ok := s.rolloutData(ctx, parts[1], parts[2])
		if !ok {
			return bad(fmt.Sprintf("rollout of %s in %s", parts[1], parts[2]))
		}
		return view{Title: parts[1] + " in " + parts[2], Body: "rollout-body", Data: d}
	case parts[0] == "release" && len(parts) == 2:
		d, ok := s.releaseData(ctx, parts[1])
		if !ok {
			return bad(fmt.Sprintf("release %s", parts[1]))
		}
		return view{Title: "Release " + parts[1], Body: "release-body", Data: d}
	case u.Path == "/history":
		f := historyFilter{Service: u.Query().Get("service"), Env: u.Query().Get("env"), Kind: u.Query().Get("kind"), Since: u.Query().Get("since")}
		if msg := f.check(); msg != "" {
			return view{Title: "Bad request", Body: "notfound-body", Data: msg, Code: http.StatusBadRequest}
		}
		return view{Title: "History", Body: "history-body", Data: s.historyData(ctx, f)}
	}
	return bad(fmt.Sprintf("page %s", u.Path))
}

func notFound(what string) view {
	return view{Title: "Not found", Body: "notfound-body", Data: what, Code: http.StatusNotFound}
}

// pageData is a whole page.
type pageData struct {
	View   view
	Live   live
	Events string // the address of its live part's event stream
	Viewer string // who is signed in ("" for nobody)
	CSRF   string
	CanAct bool // the dashboard has a token: signing in is possible
	Path   string
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if s.OIDC != nil && s.session(r) == nil { // with OIDC, reading needs a sign-in too
		http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	v := s.read(r.Context(), r.URL)
	var viewer, csrf string
	if ses := s.session(r); ses != nil {
		viewer, csrf = ses.viewer, ses.csrf
	}
	p := pageData{View: v, Live: live{D: v.Data, Act: viewer != ""}, Viewer: viewer, CSRF: csrf, CanAct: s.canAct(), Path: r.URL.RequestURI()}
	if v.Code == 0 {
		p.Events = "/events?page=" + url.QueryEscape(r.URL.RequestURI())
	}
	s.render(w, max(v.Code, http.StatusOK), "page.html", p)
}

// part renders a named template as HTML, for a page to include its live part.
func (s *Server) part(name string, data any) (template.HTML, error) {
	var b bytes.Buffer
	err := s.tmpl.ExecuteTemplate(&b, name, data)
	return template.HTML(b.String()), err //nolint:gosec // html/template output, escaped
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "dashboard: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// row is one service × environment on the overview.
type row struct {
	starter.ServiceState
	Key     string // service/env
	Bar     bool   // traffic is split or moving: draw the weights
	Outcome string // promoted, rolled back, failed, or the phase while running
}

type overviewData struct {
	Rows     []row
	Releases []starter.ReleaseState
	Error    string
}

// overviewCache shares one read of the overview among every page and feed
// that wants it at about the same time, as the hub shares one among the
// pages that watch it: a read younger than the refresh interval is used as
// it is; one up to five intervals old is used while a fresh one is read
// behind it; an older one (or an error) waits for the read under way —
// never a second read at once. Under load a render is the template's time,
// not Temporal's visibility query's.
type overviewCache struct {
	mu      sync.Mutex
	at      time.Time
	data    overviewData
	reading chan struct{} // closed when the read under way ends
}

func (s *Server) overviewData(ctx context.Context) overviewData {
	c := &s.overview
	c.mu.Lock()
	age := time.Since(c.at)
	if !c.at.IsZero() && age < s.Every {
		d := c.data
		c.mu.Unlock()
		return d
	}
	if c.reading == nil {
		c.reading = make(chan struct{})
		go s.readOverview()
	}
	wait := c.reading
	if !c.at.IsZero() && age < 5*s.Every && c.data.Error == "" {
		d := c.data
		c.mu.Unlock()
		return d
	}
	c.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return overviewData{Error: unreachable(ctx.Err())}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data
}

// readOverview is the one read under way, and keeps its answer.
func (s *Server) readOverview() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := s.readOverviewData(ctx)
	c := &s.overview
	c.mu.Lock()
	c.data, c.at = d, time.Now()
	close(c.reading)
	c.reading = nil
	c.mu.Unlock()
}

func (s *Server) readOverviewData(ctx context.Context) overviewData {
	o, err := s.Starter.Overview(ctx)
	var p overviewData
	if err != nil {
		p.Error = unreachable(err)
		return p
	}
	for _, st := range o.Services {
		r := row{ServiceState: st, Key: st.Service + "/" + st.Environment, Outcome: st.Phase}
		if st.Kind == workflows.RollbackWorkflow {
			r.Outcome = "rollback: " + st.Phase
		}
		r.Bar = st.Running && st.Traffic > 0 && st.Traffic < 100
		p.Rows = append(p.Rows, r)
	}
	p.Releases = o.Releases
	return p
}

type rolloutData struct {
	Service, Env string
	Status       *workflows.Status
	// Rollback is the service's rollback, when one ran after this rollout
	// started; RollbackRunning when it still runs.
	Rollback        *workflows.RollbackReport
	RollbackRunning bool
	Error           string
	RunURL          string
	Timeline        template.HTML
	Charts          []chart
	Analysed        int // measurements drawn
}

func (s *Server) rolloutData(ctx context.Context, service, env string) (rolloutData, bool) {
	p := rolloutData{Service: service, Env: env}
	st, err := s.Starter.Status(ctx, service, env)
	if err != nil {
		if strings.Contains(err.Error(), "no rollout") || strings.Contains(err.Error(), "not found") {
			return p, false
		}
		p.Error = unreachable(err)
		return p, true
	}
	p.Status = st
	if rep, err := s.Starter.RollbackStatus(ctx, service, env); err == nil && !rep.StartedAt.Before(st.StartedAt) {
		p.Rollback, p.RollbackRunning = rep, !rep.Phase.Done()
	}
	if s.WebUI != "" {
		p.RunURL = fmt.Sprintf("%s/namespaces/%s/workflows/%s", strings.TrimSuffix(s.WebUI, "/"), url.PathEscape(s.Namespace),
			url.PathEscape(workflows.DeploymentID(service, env)))
	}
	p.Timeline = timelineChart(st)
	p.Charts = metricCharts(st.Measurements)
	for _, c := range p.Charts {
		p.Analysed += c.Points
	}
	return p, true
}

type releaseData struct {
	Name   string
	Status *workflows.ReleaseStatus
	Frozen *workflows.FreezeState
	Envs   []releaseEnv
	Error  string
}

// releaseEnv is one environment of a release: its services by dependency level.
type releaseEnv struct {
	Name     string
	Levels   [][]workflows.ReleaseService
	Approval *workflows.ReleaseApproval
	Current  bool
}

func (s *Server) releaseData(ctx context.Context, name string) (releaseData, bool) {
	p := releaseData{Name: name}
	st, err := s.Starter.ReleaseStatus(ctx, name)
	if err != nil {
		if strings.Contains(err.Error(), "no release") || strings.Contains(err.Error(), "not found") {
			return p, false
		}
		p.Error = unreachable(err)
		return p, true
	}
	p.Status = st
	p.Frozen, _ = s.Starter.Frozen(ctx, name)
	for _, sv := range st.Services {
		i := slices.IndexFunc(p.Envs, func(e releaseEnv) bool { return e.Name == sv.Environment })
		if i < 0 {
			p.Envs = append(p.Envs, releaseEnv{Name: sv.Environment, Current: sv.Environment == st.Environment})
			i = len(p.Envs) - 1
		}
		e := &p.Envs[i]
		for len(e.Levels) <= sv.Level {
			e.Levels = append(e.Levels, nil)
		}
		e.Levels[sv.Level] = append(e.Levels[sv.Level], sv)
	}
	for i := range p.Envs {
		for _, a := range st.Approvals {
			if a.Environment == p.Envs[i].Name {
				a := a
				p.Envs[i].Approval = &a
			}
		}
	}
	return p, true
}

// historyFilter narrows the history page.
type historyFilter struct {
	Service, Env, Kind, Since string
}

func (f historyFilter) check() string {
	for _, v := range []struct{ field, val string }{{"service", f.Service}, {"env", f.Env}} {
		if v.val != "" && !name.MatchString(v.val) {
			return fmt.Sprintf("%s %q: a name is letters, digits, '.', '_' and '-'", v.field, v.val)
		}
	}
	if f.Kind != "" && !slices.Contains([]string{workflows.DeploymentWorkflow, workflows.RollbackWorkflow, workflows.ReleaseWorkflow}, f.Kind) {
		return fmt.Sprintf("kind %q: one of Deployment, Rollback, Release", f.Kind)
	}
	if _, err := f.since(); err != nil {
		return err.Error()
	}
	return ""
}

// maxSinceDays bounds the history's period: each ended run in it is read.
const maxSinceDays = 90

// since reads the figures' period: 30d (the default), 12h, 90m.
func (f historyFilter) since() (time.Duration, error) {
	s := f.Since
	if s == "" {
		s = "30d"
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var d int
		if _, err := fmt.Sscanf(n, "%d", &d); err == nil && d > 0 && d <= maxSinceDays && fmt.Sprint(d) == n {
			return time.Duration(d) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= time.Minute && d <= maxSinceDays*24*time.Hour {
		return d, nil
	}
	return 0, fmt.Errorf("since %q: a period like 30d, 12h or 90m, from 1m to %dd", f.Since, maxSinceDays)
}

type historyData struct {
	F     historyFilter
	Runs  []starter.RunSummary
	Stats []statRow
	Error string
}

// statRow is one service's figures, with bars for the charts.
type statRow struct {
	starter.Stats
	Rate                 template.HTML
	Durations, ToStable  template.HTML
	RatePct              int
	HasDurations, HasTTS bool
}

func (s *Server) historyData(ctx context.Context, f historyFilter) historyData {
	p := historyData{F: f}
	runs, err := s.Starter.Runs(ctx, f.Service, f.Env, f.Kind, 100)
	if err != nil {
		p.Error = unreachable(err)
		return p
	}
	p.Runs = runs
	since, _ := f.since()
	stats, err := s.Starter.Stats(ctx, since)
	if err != nil {
		p.Error = unreachable(err)
		return p
	}
	var longest, slowest time.Duration
	for _, st := range stats {
		longest, slowest = max(longest, st.P95), max(slowest, st.MeanTimeToStable)
	}
	for _, st := range stats {
		if f.Service != "" && st.Service != f.Service || f.Env != "" && st.Environment != f.Env {
			continue
		}
		p.Stats = append(p.Stats, statRow{Stats: st, RatePct: int(100*st.SuccessRate() + 0.5),
			Rate:         bars([]bar{{"promoted", float64(st.Promoted), "ok"}, {"rolled back", float64(st.RolledBack), "warn"}, {"failed", float64(st.Failed), "bad"}}, 0),
			Durations:    bars([]bar{{"p50", st.P50.Seconds(), "ok"}, {"p95", st.P95.Seconds(), "warn"}}, longest.Seconds()),
			ToStable:     bars([]bar{{"mean", st.MeanTimeToStable.Seconds(), "ok"}}, slowest.Seconds()),
			HasDurations: st.Promoted > 0, HasTTS: st.Rollbacks > 0,
		})
	}
	return p
}

// unreachable words an error reading Temporal for the page.
func unreachable(err error) string {
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "connection refused") || strings.Contains(msg, "Unavailable") {
		return "Temporal is unreachable (" + err.Error() + "); this page catches up when it is back"
	}
	return err.Error()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02")
}
