package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/switchyard/switchyard/internal/rollout"
)

// Shadow traffic on the embedded router: the handler "switchyard_mirror"
// runs before the reverse proxy, copies the routes' MirrorShare of the
// requests to the target slot, discards the copy's answer and compares it
// with the live one (status class; with MirrorBody the body hash of a GET).
// The client only ever gets the live answer: a shadow that fails, hangs or
// answers differently costs it nothing. The counts are read through the
// admin API (/switchyard/mirror/KEY) by the analysis, as the mirror source.

func init() {
	caddy.RegisterModule(Mirror{})
}

// Mirror is the handler; Blue and Green are the slots' replica addresses.
type Mirror struct {
	Key   string   `json:"key"`
	Blue  []string `json:"blue"`
	Green []string `json:"green"`
}

// CaddyModule registers the handler.
func (Mirror) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.switchyard_mirror", New: func() caddy.Module { return new(Mirror) }}
}

// mirrorBodyLimit: a request with a larger body is not mirrored (it would
// have to be held in memory to be sent twice).
const mirrorBodyLimit = 1 << 20

// shadowClient sends the copies: its own connections, a short timeout.
var shadowClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

var mirrorStats sync.Map // key → *mirrorCount

type mirrorCount struct {
	mu sync.Mutex
	c  rollout.MirrorCounters
}

func countsFor(key string) *mirrorCount {
	v, _ := mirrorStats.LoadOrStore(key, &mirrorCount{})
	return v.(*mirrorCount)
}

type answer struct {
	status int
	sum    []byte
	err    error
	took   time.Duration
}

func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rt := getRoutes(m.Key)
	if rt.MirrorShare <= 0 || rt.Target == rollout.None || rand.Float64() >= rt.MirrorShare {
		return next.ServeHTTP(w, r)
	}
	addrs := m.Blue
	if rt.Target == rollout.Green {
		addrs = m.Green
	}
	if len(addrs) == 0 || r.ContentLength > mirrorBodyLimit {
		return next.ServeHTTP(w, r)
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, mirrorBodyLimit+1))
		if err != nil || len(b) > mirrorBodyLimit {
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), r.Body))
			return next.ServeHTTP(w, r)
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	hashBody := rt.MirrorBody && r.Method == http.MethodGet
	shadow := make(chan answer, 1)
	count := countsFor(m.Key)
	count.add(func(c *rollout.MirrorCounters) { c.Mirrored++ })
	go func() { shadow <- m.send(r, addrs[rand.IntN(len(addrs))], body, hashBody) }()
	rec := &recorder{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	if hashBody {
		rec.h = sha256.New()
	}
	err := next.ServeHTTP(rec, r)
	live := answer{status: rec.status}
	if rec.status == 0 {
		live.status = http.StatusOK
	}
	if rec.h != nil {
		live.sum = rec.h.Sum(nil)
	}
	go func() {
		s := <-shadow
		count.add(func(c *rollout.MirrorCounters) {
			c.Answered++
			c.LatencyMs += float64(s.took) / float64(time.Millisecond)
			if s.err != nil || s.status >= 500 {
				c.Errors++
			}
			if err != nil || live.status >= 500 {
				return // nothing sound to compare with
			}
			c.Compared++
			if s.err != nil || s.status/100 != live.status/100 || (hashBody && !bytes.Equal(s.sum, live.sum)) {
				c.Mismatches++
			}
		})
	}()
	return err
}

// send makes the copy: same method, path, query, headers and body, to the
// target slot directly; its answer is read and dropped.
func (m *Mirror) send(r *http.Request, addr string, body []byte, hashBody bool) answer {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), shadowClient.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	for k, vs := range r.Header {
		if !hopByHop[strings.ToLower(k)] {
			req.Header[k] = append([]string(nil), vs...)
		}
	}
	req.Host = r.Host
	req.Header.Set("X-Switchyard-Shadow", "1")
	resp, err := shadowClient.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if hashBody {
		h := sha256.New()
		_, _ = io.Copy(h, io.LimitReader(resp.Body, 8<<20))
		a.sum = h.Sum(nil)
	} else {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 8<<20))
	}
	a.took = time.Since(start)
	return a
}

var hopByHop = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true, "te": true,
	"trailer": true, "transfer-encoding": true, "upgrade": true, "proxy-authorization": true}

func (c *mirrorCount) add(f func(*rollout.MirrorCounters)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.c)
}

func (c *mirrorCount) get() rollout.MirrorCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

// recorder notes the live answer's status and, for a compared GET, hashes its body.
type recorder struct {
	*caddyhttp.ResponseWriterWrapper
	status int
	h      hash.Hash
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriterWrapper.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.h != nil {
		r.h.Write(b)
	}
	return r.ResponseWriterWrapper.Write(b)
}

// serveMirror serves /switchyard/mirror/KEY: GET the counts since the process started.
func serveMirror(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("%s: use GET", r.Method)}
	}
	key := strings.TrimPrefix(r.URL.Path, "/switchyard/mirror/")
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(countsFor(key).get())
}

var _ caddyhttp.MiddlewareHandler = (*Mirror)(nil)
