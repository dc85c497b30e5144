// Package dashboard serves Switchyard's web dashboard: every service's
// latest rollout at a glance and each rollout's steps, weights, analysis and
// events, pushed to the page as they change. Everything is read from
// Temporal (visibility and the rollouts' status queries); it keeps nothing.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

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
	// Every is how often a page's server side re-reads Temporal for changes
	// to push (default 500 ms).
	Every time.Duration
	tmpl  *template.Template
}

// Handler returns the dashboard's routes, behind its security headers.
func (s *Server) Handler() http.Handler {
	if s.Every == 0 {
		s.Every = 500 * time.Millisecond
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
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
	}).ParseFS(files, "templates/*.html"))
	mux := http.NewServeMux()
	static, _ := fs.Sub(files, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /rollout/{service}/{env}", s.rollout)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.notFound(w, fmt.Sprintf("no page %s", r.URL.Path))
	})
	return headers(mux)
}

// headers sets what a page that can act on production needs: no framing,
// no sniffing, scripts and styles from this server only.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// row is one service × environment on the overview.
type row struct {
	starter.ServiceState
	Key     string // service/env
	Bar     bool   // traffic is split or moving: draw the weights
	Outcome string // promoted, rolled back, failed, or the phase while running
}

type overviewPage struct {
	Rows  []row
	Error string
	At    time.Time
}

func (s *Server) overviewData(ctx context.Context) overviewPage {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	states, err := s.Starter.Overview(ctx)
	p := overviewPage{At: time.Now()}
	if err != nil {
		p.Error = unreachable(err)
		return p
	}
	for _, st := range states {
		r := row{ServiceState: st, Key: st.Service + "/" + st.Environment, Outcome: st.Phase}
		r.Bar = st.Running && st.Traffic > 0 && st.Traffic < 100
		p.Rows = append(p.Rows, r)
	}
	return p
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "overview.html", s.overviewData(r.Context()))
}

type rolloutPage struct {
	Service, Env string
	Status       *workflows.Status
	Error        string
	RunURL       string
}

func (s *Server) rolloutData(ctx context.Context, service, env string) (rolloutPage, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p := rolloutPage{Service: service, Env: env}
	st, err := s.Starter.Status(ctx, service, env)
	if err != nil {
		if strings.Contains(err.Error(), "no rollout") || strings.Contains(err.Error(), "not found") {
			return p, false
		}
		p.Error = unreachable(err)
		return p, true
	}
	p.Status = st
	if s.WebUI != "" {
		p.RunURL = fmt.Sprintf("%s/namespaces/%s/workflows/%s", strings.TrimSuffix(s.WebUI, "/"), url.PathEscape(s.Namespace),
			url.PathEscape(workflows.DeploymentID(service, env)))
	}
	return p, true
}

func (s *Server) rollout(w http.ResponseWriter, r *http.Request) {
	p, ok := s.rolloutData(r.Context(), r.PathValue("service"), r.PathValue("env"))
	if !ok {
		s.notFound(w, fmt.Sprintf("no rollout of %s in %s", p.Service, p.Env))
		return
	}
	s.render(w, http.StatusOK, "rollout.html", p)
}

func (s *Server) notFound(w http.ResponseWriter, what string) {
	s.render(w, http.StatusNotFound, "notfound.html", what)
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

// events pushes the live part of a page (the overview's table, or a
// rollout's body: ?rollout=service/env) as server-sent events whenever it
// changes: the page never reloads or polls.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	part := func(ctx context.Context) (string, error) {
		var b bytes.Buffer
		if k := r.URL.Query().Get("rollout"); k != "" {
			service, env, _ := strings.Cut(k, "/")
			p, _ := s.rolloutData(ctx, service, env)
			return b.String(), s.tmpl.ExecuteTemplate(&b, "rollout-body", p)
		}
		err := s.tmpl.ExecuteTemplate(&b, "overview-body", s.overviewData(ctx))
		return b.String(), err
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	last := ""
	tick := time.NewTicker(s.Every)
	defer tick.Stop()
	for {
		html, err := part(r.Context())
		if err == nil && html != last {
			last = html
			b, _ := json.Marshal(html)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
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
