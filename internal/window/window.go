// Package window reads allowed windows ("Mon-Fri 09:00-16:00 Europe/Berlin")
// and freezes ("2026-12-20/2027-01-04"), and says whether a moment is in
// them. It is pure: a release, a service spec and the workflows use it.
package window

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // a minimal machine or container has no zoneinfo: carry it
)

// Window is a weekly period when a release may run, in a time zone:
// "Mon-Fri 09:00-16:00 Europe/Berlin".
type Window struct {
	Text     string
	Days     [7]bool // by time.Weekday
	From, To time.Duration
	Loc      *time.Location
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow reads "DAYS HH:MM-HH:MM ZONE", where DAYS is a day, a range
// (Mon-Fri) or a list (Mon,Wed,Fri), and ZONE an IANA time zone (UTC if
// left out).
func ParseWindow(s string) (Window, error) {
	w := Window{Text: s, Loc: time.UTC}
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return w, fmt.Errorf("%q: want DAYS HH:MM-HH:MM ZONE, like \"Mon-Fri 09:00-16:00 Europe/Berlin\"", s)
	}
	for _, part := range strings.Split(f[0], ",") {
		a, b, isRange := strings.Cut(strings.ToLower(part), "-")
		from, ok1 := dayNames[a]
		to, ok2 := from, true
		if isRange {
			to, ok2 = dayNames[b]
		}
		if !ok1 || !ok2 {
			return w, fmt.Errorf("%q: %q is not a day or a range of days (Mon, Tue, ... Sun; Mon-Fri)", s, part)
		}
		for d := from; ; d = (d + 1) % 7 {
			w.Days[d] = true
			if d == to {
				break
			}
		}
	}
	a, b, ok := strings.Cut(f[1], "-")
	var err1, err2 error
	w.From, err1 = clock(a)
	w.To, err2 = clock(b)
	if !ok || err1 != nil || err2 != nil || w.To <= w.From {
		return w, fmt.Errorf("%q: %q is not a period of one day, like 09:00-16:00", s, f[1])
	}
	if len(f) == 3 {
		loc, err := time.LoadLocation(f[2])
		if err != nil {
			return w, fmt.Errorf("%q: unknown time zone %q (use an IANA name, like Europe/Berlin or UTC)", s, f[2])
		}
		w.Loc = loc
	}
	return w, nil
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		if s == "24:00" {
			return 24 * time.Hour, nil
		}
		return 0, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Contains says whether t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	l := t.In(w.Loc)
	if !w.Days[l.Weekday()] {
		return false
	}
	since := l.Sub(time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, w.Loc))
	return since >= w.From && since < w.To
}

// NextOpen returns the first moment at or after t inside the window.
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	l := t.In(w.Loc)
	for i := 0; i <= 7; i++ {
		day := time.Date(l.Year(), l.Month(), l.Day()+i, 0, 0, 0, 0, w.Loc)
		if !w.Days[day.Weekday()] {
			continue
		}
		// the clock time on that date (DST days are 23 or 25 hours long)
		open := time.Date(day.Year(), day.Month(), day.Day(), int(w.From/time.Hour), int(w.From%time.Hour/time.Minute), 0, 0, w.Loc)
		if !open.Before(t) {
			return open
		}
	}
	return time.Time{}
}

// Freeze is a period when no release may start: "2026-12-20/2027-01-04",
// whole days, both included, in a time zone (UTC if left out).
type Freeze struct {
	Text       string
	Start, End time.Time // End is exclusive: the day after the last
}

// ParseFreeze reads "YYYY-MM-DD/YYYY-MM-DD [ZONE]".
func ParseFreeze(s string) (Freeze, error) {
	fz := Freeze{Text: s}
	f := strings.Fields(s)
	if len(f) < 1 || len(f) > 2 {
		return fz, fmt.Errorf("%q: want FIRST/LAST [ZONE], like \"2026-12-20/2027-01-04 Europe/Berlin\"", s)
	}
	loc := time.UTC
	if len(f) == 2 {
		var err error
		if loc, err = time.LoadLocation(f[1]); err != nil {
			return fz, fmt.Errorf("%q: unknown time zone %q (use an IANA name, like Europe/Berlin or UTC)", s, f[1])
		}
	}
	a, b, ok := strings.Cut(f[0], "/")
	start, err1 := time.ParseInLocation("2006-01-02", a, loc)
	last, err2 := time.ParseInLocation("2006-01-02", b, loc)
	if !ok || err1 != nil || err2 != nil || last.Before(start) {
		return fz, fmt.Errorf("%q: %q is not FIRST/LAST, two dates with the first not after the last", s, f[0])
	}
	fz.Start, fz.End = start, last.AddDate(0, 0, 1)
	return fz, nil
}

// Contains says whether t falls inside the freeze.
func (f Freeze) Contains(t time.Time) bool { return !t.Before(f.Start) && t.Before(f.End) }

// Windows are when releases may run: inside any allowed window (always,
// when none is given) and inside no freeze.
type Windows struct {
	Allow  []Window
	Freeze []Freeze
}

// Frozen returns the freeze t falls in, if any.
func (ws Windows) Frozen(t time.Time) (Freeze, bool) {
	for _, f := range ws.Freeze {
		if f.Contains(t) {
			return f, true
		}
	}
	return Freeze{}, false
}

// Allowed says whether t is inside an allowed window (always, when none is
// given), and if not, when the next one opens (the zero time: never).
// Freezes are apart: a freeze refuses, a closed window waits.
func (ws Windows) Allowed(t time.Time) (bool, time.Time) {
	if len(ws.Allow) == 0 {
		return true, t
	}
	var next time.Time
	for _, w := range ws.Allow {
		if n := w.NextOpen(t); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return !next.IsZero() && next.Equal(t), next
}

// Spec is windows as written in a spec: allowed periods and freezes.
type Spec struct {
	Allow  []string `yaml:"allow" json:"allow,omitempty"`
	Freeze []string `yaml:"freeze" json:"freeze,omitempty"`
}

// FieldError is one window that does not parse, with its field.
type FieldError struct{ Field, Msg string }

// Empty says whether the spec sets no window and no freeze.
func (s Spec) Empty() bool { return len(s.Allow) == 0 && len(s.Freeze) == 0 }

// Parse reads the windows; every problem comes back, naming its field
// under prefix ("windows").
func (s Spec) Parse(prefix string) (Windows, []FieldError) {
	var ws Windows
	var errs []FieldError
	for i, a := range s.Allow {
		w, err := ParseWindow(a)
		if err != nil {
			errs = append(errs, FieldError{fmt.Sprintf("%s.allow[%d]", prefix, i), err.Error()})
			continue
		}
		ws.Allow = append(ws.Allow, w)
	}
	for i, f := range s.Freeze {
		fz, err := ParseFreeze(f)
		if err != nil {
			errs = append(errs, FieldError{fmt.Sprintf("%s.freeze[%d]", prefix, i), err.Error()})
			continue
		}
		ws.Freeze = append(ws.Freeze, fz)
	}
	return ws, errs
}
