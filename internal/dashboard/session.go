package dashboard

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Sessions live on the server: the cookie holds only a random id, so a
// session ends for good at sign-out or expiry, and each has its own CSRF
// token, which a replayed form from an ended session cannot use.

// DefaultSessionTTL is how long a sign-in lasts, however active.
const DefaultSessionTTL = 8 * time.Hour

// maxSessions bounds what sign-ins can make the server keep; past it the
// oldest session ends.
const maxSessions = 10000

type session struct {
	viewer  string
	groups  []string // from the identity provider, for roles
	csrf    string
	expires time.Time
}

type sessions struct {
	mu    sync.Mutex
	byID  map[string]*session
	order []string // oldest first
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

// start makes a session for viewer and returns its id.
func (ss *sessions) start(viewer string, ttl time.Duration, groups ...string) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byID == nil {
		ss.byID = map[string]*session{}
	}
	id := randomToken()
	ss.byID[id] = &session{viewer: viewer, groups: groups, csrf: randomToken(), expires: time.Now().Add(ttl)}
	ss.order = append(ss.order, id)
	for len(ss.byID) > maxSessions {
		delete(ss.byID, ss.order[0])
		ss.order = ss.order[1:]
	}
	if len(ss.order) > 2*maxSessions { // ended ones leave ids behind
		kept := ss.order[:0]
		for _, id := range ss.order {
			if ss.byID[id] != nil {
				kept = append(kept, id)
			}
		}
		ss.order = kept
	}
	return id
}

// get returns the live session with that id, or nil.
func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	if s == nil {
		return nil
	}
	if time.Now().After(s.expires) {
		delete(ss.byID, id)
		return nil
	}
	c := *s
	return &c
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

// session returns the request's live session, or nil.
func (s *Server) session(r *http.Request) *session {
	if !s.canAct() {
		return nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) > 64 {
		return nil
	}
	return s.sessions.get(c.Value)
}
