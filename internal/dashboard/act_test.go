package dashboard

import "testing"

func TestLocalKeepsTheReturnAddressOnThisServer(t *testing.T) {
	for in, want := range map[string]string{
		"/rollout/api/production":  "/rollout/api/production",
		"/history?service=api&x=1": "/history?service=api&x=1",
		"/\t/evil.example":         "/",
		"/\n/evil.example":         "/",
		"//evil.example":           "/",
		"/\\evil.example":          "/",
		"https://evil.example/":    "/",
		"javascript:alert(1)":      "/",
		"":                         "/",
		"rollout/api":              "/",
		"/%2F/evil.example":        "/", // decodes to //evil.example: refused too
		"/ok#frag":                 "/ok",
		"http:/evil.example":       "/",
		"/\u00a0/evil.example":     "/",
		"/\u2028/evil.example":     "/",
	} {
		if got := local(in); got != want {
			t.Errorf("local(%q) = %q, want %q", in, got, want)
		}
	}
}
