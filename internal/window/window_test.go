package window

import (
	"testing"
	"time"
)

func TestWindowsOpenAndCloseInTheirTimeZone(t *testing.T) {
	w, err := ParseWindow("Mon-Fri 09:00-16:00 Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		at   string
		in   bool
		next string
	}{
		{"2026-12-01 10:00", true, "2026-12-01 10:00"},  // a Tuesday morning
		{"2026-12-01 16:00", false, "2026-12-02 09:00"}, // closes at 16:00 sharp
		{"2026-12-04 17:30", false, "2026-12-07 09:00"}, // Friday evening → Monday
		{"2026-12-05 12:00", false, "2026-12-07 09:00"}, // Saturday
		{"2026-03-27 18:00", false, "2026-03-30 09:00"}, // over the change to summer time
	} {
		if got := w.Contains(at(c.at)); got != c.in {
			t.Errorf("%s: in window %v, want %v", c.at, got, c.in)
		}
		if got := w.NextOpen(at(c.at)); !got.Equal(at(c.next)) {
			t.Errorf("%s: next open %s, want %s", c.at, got.In(berlin), c.next)
		}
	}
	// the same instant in UTC: 08:30 UTC is 09:30 in Berlin in winter
	if !w.Contains(time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC)) {
		t.Error("08:30 UTC on a Tuesday in December is inside 09:00-16:00 Berlin")
	}
	ws := Windows{Allow: []Window{w}}
	if ok, next := ws.Allowed(at("2026-12-05 12:00")); ok || !next.Equal(at("2026-12-07 09:00")) {
		t.Errorf("Allowed on a Saturday: %v %s", ok, next)
	}
	if ok, _ := (Windows{}).Allowed(at("2026-12-05 12:00")); !ok {
		t.Error("no windows: always allowed")
	}
}

func TestAFreezeCoversWholeDaysBothIncluded(t *testing.T) {
	f, err := ParseFreeze("2026-12-20/2027-01-04")
	if err != nil {
		t.Fatal(err)
	}
	ws := Windows{Freeze: []Freeze{f}}
	for _, c := range []struct {
		at     time.Time
		frozen bool
	}{
		{time.Date(2026, 12, 19, 23, 59, 0, 0, time.UTC), false},
		{time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2027, 1, 4, 23, 59, 0, 0, time.UTC), true},
		{time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC), false},
	} {
		if _, got := ws.Frozen(c.at); got != c.frozen {
			t.Errorf("%s: frozen %v, want %v", c.at, got, c.frozen)
		}
	}
	for _, bad := range []string{"2026-12-20", "2026-13-01/2026-12-31", "2026-12-20/2027-01-04 Mars/Olympus"} {
		if _, err := ParseFreeze(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"Mon-Fri", "Mon-Fry 09:00-16:00", "Mon 16:00-09:00", "Mon 9-5 UTC"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
