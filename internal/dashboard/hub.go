package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
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
	if err != nil || u.Path == "" || u.Path[0] != '/' || len(r.URL.RawQuery) > 1024 {
		http.Error(w, "events: ?page= must be a dashboard address", http.StatusBadRequest)
		return
	}
	if s.OIDC != nil && s.session(r) == nil {
		http.Error(w, "events: sign in first", http.StatusUnauthorized)
		return
	}
	if msg := known(u); msg != "" {
		http.Error(w, "events: "+msg, http.StatusBadRequest)
		return
	}
	release, ok := s.streams.take(clientOf(r), s.MaxStreams, s.MaxStreamsPerClient)
	if !ok {
		w.Header().Set("Retry-After", "10")
		http.Error(w, "events: too many live pages open; close some", http.StatusTooManyRequests)
		return
	}
	defer release()
	u = normalize(u)
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

// normalize keeps only what a view reads of an address (the history's
// filters, in one order): ?x=1 and ?x=2 are one view, one reader.
func normalize(u *url.URL) *url.URL {
	n := &url.URL{Path: u.Path}
	if u.Path == "/history" {
		q := url.Values{}
		for _, k := range []string{"service", "env", "kind", "since"} {
			if v := u.Query().Get(k); v != "" {
				q.Set(k, v)
			}
		}
		n.RawQuery = q.Encode()
	}
	return n
}

// streams counts the live pages held open, in all and per client.
type streams struct {
	mu    sync.Mutex
	total int
	by    map[string]int
}

func (st *streams) take(client string, maxAll, maxOne int) (release func(), ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.by == nil {
		st.by = map[string]int{}
	}
	if st.total >= maxAll || st.by[client] >= maxOne {
		return nil, false
	}
	st.total++
	st.by[client]++
	return func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.total--
		if st.by[client]--; st.by[client] <= 0 {
			delete(st.by, client)
		}
	}, true
}

// clientOf is the address a request came from, without its port.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// known checks an address is one of the dashboard's views, without reading
// anything: a stream for a made-up address starts no reader.
func known(u *url.URL) string {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for _, p := range parts[min(1, len(parts)):] {
		if !name.MatchString(p) {
			return "no page " + u.Path
		}
	}
	switch {
	case u.Path == "/", parts[0] == "rollout" && len(parts) == 3, parts[0] == "release" && len(parts) == 2:
		return ""
	case u.Path == "/history":
		q := u.Query()
		return historyFilter{Service: q.Get("service"), Env: q.Get("env"), Kind: q.Get("kind"), Since: q.Get("since")}.check()
	}
	return "no page " + u.Path
}
