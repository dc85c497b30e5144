package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDC signs people in with an OpenID Connect provider (authorization code
// with PKCE, state and nonce): the dashboard learns who they are from the
// provider's signed ID token, never from what they type.
type OIDC struct {
	Issuer, ClientID, ClientSecret string
	// RedirectURL is this dashboard's /auth/callback as the provider knows it.
	RedirectURL string
	// GroupsClaim names the ID token's claim listing the user's groups
	// (default "groups").
	GroupsClaim string

	mu       sync.Mutex
	provider *oidc.Provider
	pending  map[string]pendingSignin // by state
}

type pendingSignin struct {
	next, nonce, verifier string
	expires               time.Time
}

// maxPending bounds sign-ins begun and not finished.
const maxPending = 10000

func (o *OIDC) config(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(ctx, o.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("OIDC provider %s: %w", o.Issuer, err)
		}
		o.provider = p
	}
	return o.provider, &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: o.RedirectURL,
		Endpoint: o.provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}, nil
}

// begin sends the browser to the provider.
func (s *Server) oidcBegin(w http.ResponseWriter, r *http.Request) {
	o := s.OIDC
	_, cfg, err := o.config(r.Context())
	if err != nil {
		http.Error(w, "sign in: "+err.Error(), http.StatusBadGateway)
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	o.mu.Lock()
	if o.pending == nil {
		o.pending = map[string]pendingSignin{}
	}
	now := time.Now()
	for k, p := range o.pending {
		if now.After(p.expires) || len(o.pending) >= maxPending {
			delete(o.pending, k)
		}
	}
	o.pending[state] = pendingSignin{next: local(r.FormValue("next")), nonce: nonce, verifier: verifier, expires: now.Add(10 * time.Minute)}
	o.mu.Unlock()
	http.Redirect(w, r, cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// oidcCallback finishes a sign-in: the code is exchanged, the ID token
// verified (issuer, audience, expiry, signature, nonce), and a session
// started for the identity it names.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := s.OIDC
	if o == nil {
		http.NotFound(w, r)
		return
	}
	state := r.FormValue("state")
	o.mu.Lock()
	p, ok := o.pending[state]
	delete(o.pending, state)
	o.mu.Unlock()
	if !ok || time.Now().After(p.expires) {
		s.forbidden(w, r, "sign in: this sign-in was not started here, or is too old: sign in again")
		return
	}
	if e := r.FormValue("error"); e != "" {
		s.forbidden(w, r, "sign in: the identity provider said "+e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	who, err := o.identify(ctx, r.FormValue("code"), p)
	if err != nil {
		s.forbidden(w, r, "sign in: "+err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.sessions.start(who.subject, s.SessionTTL, who.groups...),
		Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, MaxAge: int(s.SessionTTL.Seconds())})
	http.Redirect(w, r, p.next, http.StatusSeeOther)
}

type identity struct {
	subject string
	groups  []string
}

func (o *OIDC) identify(ctx context.Context, code string, p pendingSignin) (identity, error) {
	provider, cfg, err := o.config(ctx)
	if err != nil {
		return identity{}, err
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		return identity{}, fmt.Errorf("exchange the code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return identity{}, errors.New("the identity provider sent no ID token")
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: o.ClientID}).Verify(ctx, raw)
	if err != nil {
		return identity{}, fmt.Errorf("the ID token: %w", err)
	}
	if idt.Nonce != p.nonce {
		return identity{}, errors.New("the ID token's nonce is not this sign-in's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return identity{}, err
	}
	who := identity{subject: idt.Subject}
	email, _ := claims["email"].(string)
	if email == "" { // some providers put it only in userinfo
		if ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			email = ui.Email
		}
	}
	if email != "" {
		who.subject = email
	}
	gc := o.GroupsClaim
	if gc == "" {
		gc = "groups"
	}
	if gs, ok := claims[gc].([]any); ok {
		for _, g := range gs {
			if s, ok := g.(string); ok {
				who.groups = append(who.groups, s)
			}
		}
	}
	return who, nil
}
