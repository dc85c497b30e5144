package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// hub shares one reader per view among every page that shows it: 200
// people watching the overview cost one read of Temporal per interval, not
// 200. A feed starts with its first subscriber and stops with its last.
type hub struct {
	mu    sync.Mutex
	feeds map[string]*feed
}

type feed struct {
	subs map[chan string]bool
	last string
}

// subscribe returns a channel that gets the view's live part now (when
// one was rendered) and every time it changes, and the function that
// ends the subscription.
func (s *Server) subscribe(key string, every time.Duration, render func(context.Context) string) (<-chan string, func()) {
	ch := make(chan string, 1)
	s.hub.mu.Lock()
	f, ok := s.hub.feeds[key]
	if !ok {
		f = &feed{subs: map[chan string]bool{}}
		s.hub.feeds[key] = f
		go s.run(key, f, every, render)
	}
	f.subs[ch] = true
	if f.last != "" {
		ch <- f.last
	}
	s.hub.mu.Unlock()
	return ch, func() {
		s.hub.mu.Lock()
		delete(f.subs, ch)
		s.hub.mu.Unlock()
	}
}

// run re-reads one view every interval while anyone watches it, and hands
// a changed part to each watcher; a watcher that has not taken the last
// one gets the newer one instead.
func (s *Server) run(key string, f *feed, every time.Duration, render func(context.Context) string) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		html := render(ctx)
		cancel()
		s.hub.mu.Lock()
		if len(f.subs) == 0 {
			delete(s.hub.feeds, key)
			s.hub.mu.Unlock()
			return
		}
		if html != f.last {
			f.last = html
			for ch := range f.subs {
				select {
				case <-ch:
				default:
				}
				ch <- html
			}
		}
		s.hub.mu.Unlock()
		time.Sleep(every)
	}
}

// events pushes the live part of a page (?page=its address) as server-sent
// events whenever it changes: the page never reloads or polls.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	u, err := url.Parse(r.URL.Query().Get("page"))
	if err != nil || u.Path == "" || u.Path[0] != '/' {
		http.Error(w, "events: ?page= must be a dashboard address", http.StatusBadRequest)
		return
	}
	act := s.viewer(r) != ""
	key := fmt.Sprintf("%s act=%t", u.RequestURI(), act)
	every := s.Every
	if u.Path == "/history" { // costly to read (each run's result), slow to change
		every = max(every, 5*time.Second)
	}
	ch, done := s.subscribe(key, every, func(ctx context.Context) string {
		v := s.read(ctx, u)
		var b bytes.Buffer
		if err := s.tmpl.ExecuteTemplate(&b, v.Body, live{D: v.Data, Act: act}); err != nil {
			return "<p class=\"banner error\">dashboard: " + template.HTMLEscapeString(err.Error()) + "</p>"
		}
		return b.String()
	})
	defer done()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case html := <-ch:
			b, _ := json.Marshal(html)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
