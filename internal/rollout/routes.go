package rollout

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Routes decide who reaches the new version besides the weights: requests
// that match (a dark launch to staff), a test route to the idle slot, and
// stickiness. The zero value routes by weight alone.
type Routes struct {
	// Target is the new version's slot: where matching requests go.
	Target Slot `json:"target,omitempty"`
	// Header and Cookie: a request carrying every header of Header, or
	// every cookie of Cookie (exact values), goes to Target whatever the
	// weight, even 0 % (as Gateway API's matches: each ANDs, the two OR).
	Header map[string]string `json:"header,omitempty"`
	Cookie map[string]string `json:"cookie,omitempty"`
	// TestHeader: a request whose TestHeader is TestValue reaches Target,
	// so checks go through the router before any traffic does.
	TestHeader string `json:"testHeader,omitempty"`
	TestValue  string `json:"testValue,omitempty"`
	// StickyCookie or StickyHeader keeps each client on its version as the
	// weight rises: the client's bucket (0-99: kept in the cookie, set on
	// its first answer; or a hash of the header, such as a user ID) is on
	// Target while it is below Target's weight. A client moves at most once,
	// old to new; an abort (weight 0, routes cleared) sends everyone back.
	StickyCookie string `json:"stickyCookie,omitempty"`
	StickyHeader string `json:"stickyHeader,omitempty"`
	// Weight is Target's share when the routes go in, for a router that
	// compares sticky buckets with it itself (HAProxy's map).
	Weight int `json:"weight,omitempty"`
	// MirrorShare of the requests (0-1) is copied to Target, whose answers
	// are discarded and compared with the live ones: their status class,
	// and with MirrorBody the body's hash of a GET.
	MirrorShare float64 `json:"mirrorShare,omitempty"`
	MirrorBody  bool    `json:"mirrorBody,omitempty"`
}

// MirrorCounters count a router's mirrored requests since it started.
type MirrorCounters struct {
	Mirrored int64 `json:"mirrored"` // copies sent
	Compared int64 `json:"compared"` // copies whose answer was compared with the live one
	// Mismatches: answers of another status class (or body, with MirrorBody).
	Mismatches int64 `json:"mismatches"`
	// Answered: copies that ended (an answer or an error); Errors: those
	// that failed (no answer, or 5xx).
	Answered int64 `json:"answered"`
	Errors   int64 `json:"errors"`
	// LatencyMs sums the answered copies' response times.
	LatencyMs float64 `json:"latencyMs"`
}

// Since is the counters' change since base (from zero if they restarted).
func (c MirrorCounters) Since(base MirrorCounters) MirrorCounters {
	if c.Mirrored < base.Mirrored {
		return c
	}
	return MirrorCounters{Mirrored: c.Mirrored - base.Mirrored, Compared: c.Compared - base.Compared,
		Mismatches: c.Mismatches - base.Mismatches, Answered: c.Answered - base.Answered, Errors: c.Errors - base.Errors,
		LatencyMs: c.LatencyMs - base.LatencyMs}
}

// Empty says the routes route nothing.
func (r Routes) Empty() bool {
	return r.Target == None || (len(r.Header) == 0 && len(r.Cookie) == 0 && r.TestHeader == "" && !r.Sticky() && r.MirrorShare <= 0)
}

// Sticky says whether clients keep their version.
func (r Routes) Sticky() bool { return r.StickyCookie != "" || r.StickyHeader != "" }

// Matches says whether a request goes to Target whatever the weight: it
// carries the test header, every header of the match, or every cookie.
func (r Routes) Matches(req *http.Request) bool {
	if r.Target == None {
		return false
	}
	if r.TestHeader != "" && req.Header.Get(r.TestHeader) == r.TestValue {
		return true
	}
	headers := len(r.Header) > 0
	for k, v := range r.Header {
		if req.Header.Get(k) != v {
			headers = false
			break
		}
	}
	cookies := len(r.Cookie) > 0
	for k, v := range r.Cookie {
		if c, err := req.Cookie(k); err != nil || c.Value != v {
			cookies = false
			break
		}
	}
	return headers || cookies
}

// Bucket is a sticky client's place, 0-99, and whether it is new (its
// cookie is to be set). draw gives a fresh bucket for a client without one.
func (r Routes) Bucket(req *http.Request, draw func() int) (bucket int, fresh bool) {
	if r.StickyHeader != "" {
		if v := req.Header.Get(r.StickyHeader); v != "" {
			h := fnv.New32a()
			h.Write([]byte(v))
			return int(h.Sum32() % 100), false
		}
		return draw(), false // no ID: weighted, unpinned
	}
	if c, err := req.Cookie(r.StickyCookie); err == nil {
		if b, err := strconv.Atoi(c.Value); err == nil && b >= 0 && b < 100 {
			return b, false
		}
	}
	return draw(), true
}

// StickyCookieFor is the Set-Cookie of a client's bucket.
func (r Routes) StickyCookieFor(bucket int) *http.Cookie {
	return &http.Cookie{Name: r.StickyCookie, Value: strconv.Itoa(bucket), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

func (r Routes) String() string {
	if r.Empty() {
		return "by weight only"
	}
	var parts []string
	var match []string
	if len(r.Header) > 0 {
		var hs []string
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			hs = append(hs, fmt.Sprintf("%s: %s", k, r.Header[k]))
		}
		match = append(match, "header "+strings.Join(hs, " and "))
	}
	if len(r.Cookie) > 0 {
		var cs []string
		for _, k := range slices.Sorted(maps.Keys(r.Cookie)) {
			cs = append(cs, fmt.Sprintf("%s=%s", k, r.Cookie[k]))
		}
		match = append(match, "cookie "+strings.Join(cs, " and "))
	}
	if len(match) > 0 {
		parts = append(parts, strings.Join(match, " or ")+" → "+string(r.Target))
	}
	if r.TestHeader != "" {
		parts = append(parts, fmt.Sprintf("test route %s: %s → %s", r.TestHeader, r.TestValue, r.Target))
	}
	if r.MirrorShare > 0 {
		what := "status class"
		if r.MirrorBody {
			what += " and body of GETs"
		}
		parts = append(parts, fmt.Sprintf("mirroring %g%% of requests to %s (answers discarded, %s compared)", 100*r.MirrorShare, r.Target, what))
	}
	sticky := ""
	switch {
	case r.StickyCookie != "":
		sticky = "sticky by cookie " + r.StickyCookie
	case r.StickyHeader != "":
		sticky = "sticky by header " + r.StickyHeader
	}
	if sticky != "" && r.Weight > 0 {
		// who is pinned to what
		sticky += fmt.Sprintf(" (%d%% of clients kept on %s)", r.Weight, r.Target)
	}
	if sticky != "" {
		parts = append(parts, sticky)
	}
	return strings.Join(parts, "; ")
}
