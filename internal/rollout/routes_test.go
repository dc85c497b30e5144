package rollout

import (
	"net/http"
	"testing"
)

func TestRoutesMatchAHeaderSetOrACookieSetAndTheTestRoute(t *testing.T) {
	r := Routes{Target: Green, Header: map[string]string{"X-Canary": "true", "X-Team": "ops"}, Cookie: map[string]string{"beta": "1"},
		TestHeader: "X-Switchyard-Test", TestValue: "1"}
	req := func(set func(*http.Request)) *http.Request {
		q, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		set(q)
		return q
	}
	cases := []struct {
		name string
		set  func(*http.Request)
		want bool
	}{
		{"nothing", func(*http.Request) {}, false},
		{"one header of two", func(q *http.Request) { q.Header.Set("X-Canary", "true") }, false},
		{"both headers", func(q *http.Request) { q.Header.Set("X-Canary", "true"); q.Header.Set("X-Team", "ops") }, true},
		{"a wrong value", func(q *http.Request) { q.Header.Set("X-Canary", "TRUE"); q.Header.Set("X-Team", "ops") }, false},
		{"the cookie", func(q *http.Request) { q.AddCookie(&http.Cookie{Name: "beta", Value: "1"}) }, true},
		{"the cookie, another value", func(q *http.Request) { q.AddCookie(&http.Cookie{Name: "beta", Value: "0"}) }, false},
		{"the test route", func(q *http.Request) { q.Header.Set("X-Switchyard-Test", "1") }, true},
	}
	for _, c := range cases {
		if got := r.Matches(req(c.set)); got != c.want {
			t.Errorf("%s: matches %v, want %v", c.name, got, c.want)
		}
	}
	if (Routes{Header: r.Header}).Matches(req(cases[2].set)) {
		t.Error("routes with no target matched")
	}
	if got := r.String(); got != "header X-Canary: true and X-Team: ops or cookie beta=1 → green; test route X-Switchyard-Test: 1 → green" {
		t.Errorf("String() = %q", got)
	}
	if got := (Routes{Target: Green, StickyCookie: "sw", Weight: 25}).String(); got != "sticky by cookie sw (25% of clients kept on green)" {
		t.Errorf("String() = %q", got)
	}
	if got := (Routes{Target: Green, StickyHeader: "X-User-ID", Header: map[string]string{"X-Canary": "true"}}).String(); got != "header X-Canary: true → green; sticky by header X-User-ID" {
		t.Errorf("String() = %q", got)
	}
}

func TestAStickyClientKeepsItsBucket(t *testing.T) {
	byCookie := Routes{Target: Green, StickyCookie: "sw"}
	q, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	b, fresh := byCookie.Bucket(q, func() int { return 42 })
	if b != 42 || !fresh {
		t.Fatalf("a new client: bucket %d fresh %v", b, fresh)
	}
	q.AddCookie(byCookie.StickyCookieFor(b))
	if b2, fresh := byCookie.Bucket(q, func() int { return 7 }); b2 != 42 || fresh {
		t.Fatalf("a returning client: bucket %d fresh %v", b2, fresh)
	}
	q2, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	q2.AddCookie(&http.Cookie{Name: "sw", Value: "250"})
	if b3, fresh := byCookie.Bucket(q2, func() int { return 3 }); b3 != 3 || !fresh {
		t.Fatalf("a forged bucket is drawn again: %d %v", b3, fresh)
	}
	byHeader := Routes{Target: Green, StickyHeader: "X-User-ID"}
	u, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	u.Header.Set("X-User-ID", "alice")
	first, _ := byHeader.Bucket(u, func() int { return 99 })
	for range 10 {
		if again, fresh := byHeader.Bucket(u, func() int { return 99 }); again != first || fresh {
			t.Fatalf("the same user got bucket %d then %d", first, again)
		}
	}
}
