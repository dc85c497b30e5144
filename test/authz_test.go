package test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// jwtIssuer stands in for an organisation's identity provider: it signs
// RS256 tokens and serves its public key as a JWKS, which the real
// Temporal server fetches and checks every call against.
type jwtIssuer struct {
	key     *rsa.PrivateKey
	jwksURL string
}

func newJWTIssuer(t testing.TB) *jwtIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "test-key", "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	return &jwtIssuer{key: key, jwksURL: srv.URL + "/jwks.json"}
}

// token signs a JWT for sub with Temporal permissions ("default:write").
func (j *jwtIssuer) token(sub string, permissions ...string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "test-key"})
	body, _ := json.Marshal(map[string]any{"sub": sub, "permissions": permissions,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	signing := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, j.key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return signing + "." + b64(sig)
}

// composeServices are the services the shipped compose file starts.
const composeServices = "frontend,internal-frontend,history,matching,worker"

// authorizationYAML is the server's authorization section, as the shipped
// docker-compose.temporal.yml asks the temporalio/server image for it
// (TEMPORAL_AUTH_AUTHORIZER, TEMPORAL_AUTH_CLAIM_MAPPER, TEMPORAL_JWT_KEY_SOURCE1).
func authorizationYAML(jwks string) string {
	return fmt.Sprintf(`  authorization:
    jwtKeyProvider:
      keySourceURIs: [%q]
      refreshInterval: 1m
    permissionsClaimName: permissions
    authorizer: default
    claimMapper: default
`, jwks)
}

// TestTheProductionServerRefusesAnUnauthenticatedClientAndRecordsWhoStarted
// runs the real Temporal server (bin/tools/server) on PostgreSQL with the
// authorization the shipped compose file turns on: a client without a
// token, or with one the issuer did not sign, is refused; a reader cannot
// start a rollout; a CI identity with write permission deploys, and the
// rollout records the identity Temporal verified, whatever name it typed.
func TestTheProductionServerRefusesAnUnauthenticatedClientAndRecordsWhoStarted(t *testing.T) {
	checkComposeTurnsOnAuthorization(t)
	iss := newJWTIssuer(t)
	p := startPGTemporalWith(t, iss)

	denied := func(what string, err error) {
		t.Helper()
		var pd *serviceerror.PermissionDenied
		if !errors.As(err, &pd) {
			t.Fatalf("%s: %v, want PermissionDenied", what, err)
		}
		t.Logf("%s: refused (%v)", what, err)
	}
	start := func(c client.Client) error {
		_, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "deploy/api/production", TaskQueue: "switchyard"},
			workflows.DeploymentWorkflow, workflows.DeploymentInput{Version: "v2"})
		return err
	}
	list := func(c client.Client) error {
		_, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{})
		return err
	}
	anon := dialWith(t, p.hostPort, "", p.tls)
	denied("no token: start a rollout", start(anon))
	denied("no token: list the rollouts", list(anon))
	forger := newJWTIssuer(t)
	fo := client.Options{HostPort: p.hostPort, Logger: quiet{}, Credentials: credentials(forger.token("mallory", "temporal-system:admin"))}
	fo.ConnectionOptions.TLS = p.tls
	if forged, err := client.Dial(fo); err == nil {
		denied("a token signed by another key: start a rollout", start(forged))
		forged.Close()
	} else {
		denied("a token signed by another key: connect", err)
	}
	reader := dialWith(t, p.hostPort, iss.token("viewer@example.com", "default:read"), p.tls)
	if err := list(reader); err != nil {
		t.Fatalf("a reader lists: %v", err)
	}
	denied("a reader: start a rollout", start(reader))

	// the CLI without TEMPORAL_API_KEY is refused too, and says so
	cmd := exec.Command(filepath.Join(bins, "switchyard"), "--address", p.hostPort, "--tls-ca", filepath.Join(p.tlsDir, "ca.pem"), "history", "api", "--env", "production")
	cmd.Env = append(os.Environ(), "TEMPORAL_API_KEY=")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(strings.ToLower(string(out)), "permission") {
		t.Fatalf("the CLI without a token: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
	t.Logf("CLI without TEMPORAL_API_KEY: exit %d: %s", cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out)))

	// CI deploys with its own token; the rollout says who Temporal verified
	ci := iss.token("ci@example.com", "default:write")
	e := newEnv(t, opts{address: p.hostPort, apiKey: ci, tls: p.tls, steps: []int{100}, noBake: true})
	run, err := e.starter.Deploy(context.Background(), e.svc, "v1", "Alice (typed)", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != "" {
		t.Fatalf("the CI identity's rollout: %+v %v", o, err)
	}
	h := historyOf(t, e.starter.C, run)
	record(t, h, "deployment_started_by_verified_principal.json")
	if pr := h.Events[0].GetPrincipal(); pr.GetName() != "ci@example.com" || pr.GetType() != "jwt" {
		t.Fatalf("the start event's principal: %v", pr)
	}
	found := false
	for _, ev := range o.Status.Events {
		if strings.Contains(ev.Message, "started by jwt:ci@example.com (verified by Temporal)") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the rollout does not record the verified identity: %+v", o.Status.Events)
	}
	t.Logf("verified: the start event's principal is %s:%s and the rollout records it beside the typed name", h.Events[0].GetPrincipal().GetType(), h.Events[0].GetPrincipal().GetName())
}

// checkComposeTurnsOnAuthorization reads the shipped compose file: the
// server the test runs is configured as that file configures the image.
func checkComposeTurnsOnAuthorization(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.temporal.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	env := f.Services["temporal"].Environment
	for k, want := range map[string]string{"TEMPORAL_AUTH_AUTHORIZER": "default", "TEMPORAL_AUTH_CLAIM_MAPPER": "default", "USE_INTERNAL_FRONTEND": "true",
		"TEMPORAL_SERVICES": composeServices} {
		if env[k] != want {
			t.Fatalf("docker-compose.temporal.yml: services.temporal.environment.%s = %q, want %q", k, env[k], want)
		}
	}
	if !strings.Contains(env["TEMPORAL_JWT_KEY_SOURCE1"], "TEMPORAL_JWKS_URL") {
		t.Fatalf("docker-compose.temporal.yml: TEMPORAL_JWT_KEY_SOURCE1 should come from TEMPORAL_JWKS_URL: %q", env["TEMPORAL_JWT_KEY_SOURCE1"])
	}
}

// testCA writes a CA and a server certificate for 127.0.0.1 into dir
// (ca.pem, server.pem, server-key.pem) and returns a client config trusting it.
func testCA(t testing.TB, dir string) *tls.Config {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, b := range map[string]*pem.Block{"ca.pem": {Type: "CERTIFICATE", Bytes: caDER}, "server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// TestSwitchyardsAuthorizerHoldsEveryClientToTheRoles runs this module's
// own server (`switchyard temporal-server`) on PostgreSQL with the roles
// file: a CI token that may write to the namespace deploys to staging, but
// the server refuses it a production deploy, and an abort of production
// sent straight through the SDK (as the temporal CLI would); the on-call
// engineer's token may abort production.
func TestSwitchyardsAuthorizerHoldsEveryClientToTheRoles(t *testing.T) {
	rolesFile := filepath.Join(t.TempDir(), "roles.yaml")
	if err := os.WriteFile(rolesFile, []byte(`roles:
  - {name: ci, members: [ci@example.com], actions: [deploy, pause, promote, abort, rollback], services: ["*"], environments: [staging]}
  - {name: on-call, members: [oncall@example.com], actions: [pause, abort, rollback], services: ["*"], environments: ["*"]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	iss := newJWTIssuer(t)
	p := startPGTemporalRoles(t, iss, rolesFile)
	ci := iss.token("ci@example.com", "default:write")
	e := newEnv(t, opts{address: p.hostPort, apiKey: ci, tls: p.tls, steps: []int{100}, noBake: true})
	staging, production := *e.svc, *e.svc
	staging.Environment, production.Environment = "staging", "production"
	retireOnCleanup(t, &staging)
	retireOnCleanup(t, &production)
	refused := func(what string, err error, want string) {
		t.Helper()
		var pd *serviceerror.PermissionDenied
		if !errors.As(err, &pd) || !strings.Contains(pd.Reason, want) {
			t.Fatalf("%s: %v (reason %q), want PermissionDenied with %q", what, err, reasonOf(err), want)
		}
		t.Logf("%s: refused by the server: %s", what, pd.Reason)
	}
	// the CLI with CI's token: who asks is the token's subject
	src, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	stagingFile := filepath.Join(filepath.Dir(e.file), "staging.yaml")
	if err := os.WriteFile(stagingFile, []byte(strings.Replace(string(src), "environments:\n  test: {}", "environments:\n  staging: {}\n  production: {}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bins, "switchyard"), "--address", p.hostPort, "--tls-ca", filepath.Join(p.tlsDir, "ca.pem"), "--task-queue", e.queue,
		"deploy", e.svc.Name, "-f", stagingFile, "--env", "staging", "--version", "v1")
	cmd.Env = append(os.Environ(), "TEMPORAL_API_KEY="+ci, "SWITCHYARD_ACTOR=someone-else")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "promoted") || !strings.Contains(string(out), "requested by ci@example.com") {
		t.Fatalf("CI deploying staging with the CLI: %v\n%s", err, out)
	}
	t.Logf("CI deploying staging with the CLI: promoted, recorded as requested by ci@example.com (its token's subject, not SWITCHYARD_ACTOR)")
	_, err = e.starter.Deploy(context.Background(), &staging, "v2", "carol@example.com", starter.DeployOptions{})
	refused("CI's token saying the deploy is carol's", err, "the request says it is by carol@example.com, but the token is ci@example.com's")
	_, err = e.starter.Deploy(context.Background(), &production, "v1", "ci@example.com", starter.DeployOptions{})
	refused("CI deploying production", err, "ci@example.com may not deploy "+e.svc.Name+" in production: no role in "+rolesFile+" grants it")
	_, err = e.starter.C.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: workflows.DeploymentID(e.svc.Name, "production"),
		UpdateName: workflows.Abort, Args: []any{workflows.AbortRequest{Reason: "x", By: "ci@example.com"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	refused("CI aborting production straight through the SDK", err, "ci@example.com may not abort")
	oncall := dialWith(t, p.hostPort, iss.token("oncall@example.com", "default:write"), p.tls)
	_, err = oncall.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: workflows.DeploymentID(e.svc.Name, "production"),
		UpdateName: workflows.Abort, Args: []any{workflows.AbortRequest{Reason: "x"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	var pd *serviceerror.PermissionDenied
	if errors.As(err, &pd) {
		t.Fatalf("the on-call engineer aborting production was refused: %v", err)
	}
	t.Logf("on-call aborting production: let through to the workflow (%v)", err)
}

func reasonOf(err error) string {
	var pd *serviceerror.PermissionDenied
	if errors.As(err, &pd) {
		return pd.Reason
	}
	return ""
}
