package activities

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

func withCert(notAfter time.Time, headers map[string]string) *http.Response {
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	return &http.Response{Header: h, TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{NotAfter: notAfter}}}}
}

func TestSecurityCheckWantsTheHeadersAndACertificateFarFromExpiry(t *testing.T) {
	s := spec.Security{Headers: []string{"Strict-Transport-Security", "X-Frame-Options"}, TLSExpiryDays: 14}
	good := withCert(time.Now().Add(90*24*time.Hour), map[string]string{"Strict-Transport-Security": "max-age=63072000", "X-Frame-Options": "DENY"})
	if err := security(good, s); err != nil {
		t.Fatalf("good response refused: %v", err)
	}
	if d := certDays(good); d < 89 || d > 90 {
		t.Fatalf("certDays = %d, want 89 or 90", d)
	}
	bad := withCert(time.Now().Add(3*24*time.Hour), map[string]string{"X-Frame-Options": "DENY"})
	err := security(bad, s)
	if err == nil || !strings.Contains(err.Error(), "missing headers: Strict-Transport-Security") ||
		!strings.Contains(err.Error(), "TLS certificate expires in 2 days (limit 14)") {
		t.Fatalf("got %v", err)
	}
	plain := &http.Response{Header: http.Header{"X-Frame-Options": {"DENY"}, "Strict-Transport-Security": {"x"}}}
	if err := security(plain, s); err != nil || certDays(plain) != -1 {
		t.Fatalf("plain HTTP: %v, days %d", err, certDays(plain))
	}
}

func TestTailBufferKeepsTheLastBytesAndLine(t *testing.T) {
	b := &tailBuffer{max: 8}
	_, _ = b.Write([]byte("first line\nsecond\n"))
	if b.String() != "\nsecond\n" || b.lastLine() != "second" {
		t.Fatalf("got %q / %q", b.String(), b.lastLine())
	}
}
