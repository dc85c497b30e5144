package spec

import (
	"os"
	"regexp"
	"slices"
	"strings"
)

// userinfoRe finds the user:password@ of a URL in free text.
var userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@`)

// MaxOutput bounds the command output kept for history, alerts and pages.
const MaxOutput = 2048

// Redact makes command output fit to leave the worker: the worker's value
// of every variable the spec names as a secret is replaced by its name,
// URLs lose their user:password@, and only the last MaxOutput bytes are
// kept. It runs where the output is read, before history, alerts or the
// dashboard can see it.
func (s *Service) Redact(text string) string {
	var pairs []string
	for _, v := range s.EnvReads() {
		// short values would blot out ordinary words; a secret is longer
		if val, ok := os.LookupEnv(v.Name); ok && len(val) >= 4 {
			pairs = append(pairs, val, "[redacted $"+v.Name+"]")
		}
	}
	if len(pairs) > 0 {
		text = strings.NewReplacer(longestFirst(pairs)...).Replace(text)
	}
	text = StripUserinfo(text)
	if len(text) > MaxOutput {
		text = "…" + text[len(text)-MaxOutput:]
	}
	return text
}

// StripUserinfo removes user:password@ from every URL in text.
func StripUserinfo(text string) string { return userinfoRe.ReplaceAllString(text, "$1") }

// longestFirst orders old/new pairs so a secret that contains another is
// replaced whole.
func longestFirst(pairs []string) []string {
	type kv struct{ k, v string }
	var kvs []kv
	for i := 0; i+1 < len(pairs); i += 2 {
		kvs = append(kvs, kv{pairs[i], pairs[i+1]})
	}
	slices.SortStableFunc(kvs, func(a, b kv) int { return len(b.k) - len(a.k) })
	out := make([]string, 0, len(pairs))
	for _, p := range kvs {
		out = append(out, p.k, p.v)
	}
	return out
}
