package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxVersionLen bounds a version: it becomes an image tag (128 at most).
const MaxVersionLen = 128

var versionRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// CheckVersion refuses a version that could be anything but a name: it is
// put into command paths, image tags, PromQL, alerts and pages, so it is
// held to an image tag's characters, with no "..".
func CheckVersion(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("version: required (like v2 or 1.4.0-rc1)")
	case len(v) > MaxVersionLen:
		return fmt.Errorf("version: %d characters, at most %d", len(v), MaxVersionLen)
	case !versionRe.MatchString(v):
		return fmt.Errorf("version: %q: only letters, digits, '.', '_' and '-' (not first), like v2 or 1.4.0-rc1", v)
	case strings.Contains(v, ".."):
		return fmt.Errorf("version: %q: \"..\" is not allowed", v)
	}
	return nil
}

// PromQLString escapes a value for a PromQL double- or single-quoted
// string, so a template variable can never end its label matcher.
func PromQLString(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `'`, `\'`, "\n", `\n`, "\r", `\r`).Replace(v)
}
