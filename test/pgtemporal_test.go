package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchyard/switchyard/worker"
	"github.com/switchyard/switchyard/workflows"
)

// pgTemporal is the real Temporal server (built from go.temporal.io/server
// at the version this module pins) on a real PostgreSQL, both on
// 127.0.0.1: what a team runs in production, started per test.
type pgTemporal struct {
	t         testing.TB
	dir       string
	pgBin     string
	pgPort    int
	hostPort  string
	server    *exec.Cmd
	serverLog *os.File
	// authz, when set, turns on the server's JWT claim mapper and default
	// authorizer with this issuer's keys, as the shipped production setup
	// does; apiKey is the system admin's token the harness itself uses.
	authz  *jwtIssuer
	apiKey string
	// roles, when set, runs this module's own server (switchyard
	// temporal-server) with Switchyard's authorizer and this roles file.
	roles  string
	tls    *tls.Config // a client's, trusting the frontend's test CA (with authz)
	tlsDir string
}

// toolsDir is where `make temporal-bins` puts the server and its SQL tool.
var toolsDir = filepath.Join("..", "bin", "tools")

func startPGTemporal(t testing.TB) *pgTemporal { return startPGTemporalWith(t, nil) }

// startPGTemporalWith starts the real server on PostgreSQL; with an issuer,
// it refuses every call without a token that issuer signed.
func startPGTemporalWith(t testing.TB, authz *jwtIssuer) *pgTemporal {
	t.Helper()
	return startPGTemporalRoles(t, authz, "")
}

// startPGTemporalRoles is startPGTemporalWith, with Switchyard's own server
// and authorizer holding every call to the roles file when roles is set.
func startPGTemporalRoles(t testing.TB, authz *jwtIssuer, roles string) *pgTemporal {
	t.Helper()
	for _, b := range []string{"server", "sql"} {
		if _, err := os.Stat(filepath.Join(toolsDir, b)); err != nil {
			t.Skipf("no %s in bin/tools: run `make temporal-bins` (.ci/run does) to build the Temporal server and its SQL tool", b)
		}
	}
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		t.Skip("PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it")
	}
	// PostgreSQL refuses to run as root; its directory must be the postgres user's
	dir, err := os.MkdirTemp("", "switchyard-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &pgTemporal{t: t, dir: dir, pgBin: filepath.Dir(initdbs[len(initdbs)-1]), pgPort: freePort(t), authz: authz, roles: roles}
	if authz != nil {
		p.apiKey = authz.token("temporal-admin", "temporal-system:admin")
		p.tlsDir = filepath.Join(dir, "tls")
		p.tls = testCA(t, p.tlsDir)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	p.asPostgres("initdb", "-D", p.pgData(), "-U", "temporal", "--auth=trust", "--no-sync")
	p.startPostgres()
	t.Cleanup(func() { p.pgCtl("stop", "-m", "fast") })
	p.schema()
	p.writeConfig()
	p.startServer()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the Temporal server's log ends:\n%s", p.serverTail())
		}
		p.stopServer()
	})
	c := p.dial()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lastErr error
	for {
		_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: "default", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
		if err == nil || strings.Contains(err.Error(), "already") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("register namespace default: %v (before: %v)\n%s", err, lastErr, p.serverTail())
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	for {
		err := worker.EnsureSearchAttributes(ctx, c, "default")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("search attributes: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// the frontend learns new search attributes when it refreshes its
	// namespace cache (every ~10 s): wait until a run carrying them starts
	for {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "sa-probe", TaskQueue: "sa-probe",
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SAService.ValueSet("probe"), workflows.SATraffic.ValueSet(0))}, "Probe")
		if err == nil {
			_ = c.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "probe")
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the search attributes never became usable: %v", err)
		}
		time.Sleep(time.Second)
	}
	return p
}

func (p *pgTemporal) pgData() string { return filepath.Join(p.dir, "pg") }

// asPostgres runs a PostgreSQL tool as the postgres user when this is root.
func (p *pgTemporal) asPostgres(tool string, args ...string) string {
	p.t.Helper()
	bin := filepath.Join(p.pgBin, tool)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (p *pgTemporal) pgCtl(args ...string) {
	p.t.Helper()
	p.asPostgres("pg_ctl", append([]string{"-D", p.pgData(), "-l", filepath.Join(p.dir, "pg.log"), "-w"}, args...)...)
}

func (p *pgTemporal) startPostgres() {
	p.t.Helper()
	p.pgCtl("-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", p.pgPort, p.pgData()), "start")
}

// RestartPostgres stops PostgreSQL for a while, then starts it again.
func (p *pgTemporal) RestartPostgres(down time.Duration) {
	p.t.Helper()
	p.pgCtl("stop", "-m", "fast")
	p.t.Logf("PostgreSQL stopped for %s", down)
	time.Sleep(down)
	p.startPostgres()
	p.t.Log("PostgreSQL started again")
}

func (p *pgTemporal) sqlTool(args ...string) {
	p.t.Helper()
	full := append([]string{"--plugin", "postgres12", "--ep", "127.0.0.1", "-p", fmt.Sprint(p.pgPort), "-u", "temporal"}, args...)
	out, err := exec.Command(filepath.Join(toolsDir, "sql"), full...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("temporal-sql-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// schema creates both databases and applies Temporal's own versioned schema.
func (p *pgTemporal) schema() {
	p.t.Helper()
	mod, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/server").Output()
	if err != nil {
		p.t.Fatalf("go list go.temporal.io/server: %v", err)
	}
	schemaDir := filepath.Join(strings.TrimSpace(string(mod)), "schema", "postgresql", "v12")
	for db, sub := range map[string]string{"temporal": "temporal", "temporal_visibility": "visibility"} {
		p.sqlTool("--db", db, "create")
		p.sqlTool("--db", db, "setup-schema", "-v", "0.0")
		p.sqlTool("--db", db, "update-schema", "-d", filepath.Join(schemaDir, sub, "versioned"))
	}
}

// writeConfig writes the server's config with ports of its own.
func (p *pgTemporal) writeConfig() {
	p.t.Helper()
	ports := make([]int, 10)
	for i := range ports {
		ports[i] = freePort(p.t)
	}
	p.hostPort = fmt.Sprintf("127.0.0.1:%d", ports[0])
	store := func(db string, conns int) string {
		return fmt.Sprintf(`      sql:
        pluginName: postgres12
        databaseName: %s
        connectAddr: "127.0.0.1:%d"
        connectProtocol: tcp
        user: temporal
        password: ""
        maxConns: %d
        maxIdleConns: %d
        maxConnLifetime: 1h
`, db, p.pgPort, conns, conns)
	}
	svc := func(name string, grpc, membership int) string {
		return fmt.Sprintf("  %s:\n    rpc:\n      grpcPort: %d\n      membershipPort: %d\n      bindOnLocalHost: true\n", name, grpc, membership)
	}
	cfg := "log:\n  stdout: true\n  level: warn\n" +
		"persistence:\n  defaultStore: default\n  visibilityStore: visibility\n  numHistoryShards: 4\n  datastores:\n" +
		"    default:\n" + store("temporal", 20) + "    visibility:\n" + store("temporal_visibility", 5) +
		"global:\n  membership:\n    maxJoinDuration: 30s\n    broadcastAddress: 127.0.0.1\n" +
		"services:\n" + svc("frontend", ports[0], ports[1]) + fmt.Sprintf("      httpPort: %d\n", ports[8]) +
		svc("matching", ports[2], ports[3]) + svc("history", ports[4], ports[5]) + svc("worker", ports[6], ports[7]) +
		fmt.Sprintf(`clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: %s
dcRedirectionPolicy:
  policy: noop
`, p.hostPort)
	if err := os.MkdirAll(filepath.Join(p.dir, "config"), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if p.authz != nil {
		cfg = strings.Replace(cfg, "global:\n", "global:\n"+authorizationYAML(p.authz.jwksURL)+fmt.Sprintf(`  tls:
    frontend:
      server:
        certFile: %s/server.pem
        keyFile: %s/server-key.pem
      client:
        serverName: 127.0.0.1
        rootCaFiles: [%s/ca.pem]
`, p.tlsDir, p.tlsDir, p.tlsDir), 1)
		// the server's own workers reach the frontend through an internal
		// one, which trusts its cluster rather than a token
		cfg = strings.Replace(cfg, "  matching:\n", fmt.Sprintf("  internal-frontend:\n    rpc:\n      grpcPort: %d\n      membershipPort: %d\n      bindOnLocalHost: true\n      httpPort: %d\n  matching:\n",
			freePort(p.t), freePort(p.t), freePort(p.t)), 1)
		dyn := filepath.Join(p.dir, "config", "dynamic.yaml")
		if err := os.WriteFile(dyn, []byte("frontend.enablePrincipalPropagation:\n  - value: true\nfrontend.exposeAuthorizerErrors:\n  - value: true\n"), 0o644); err != nil {
			p.t.Fatal(err)
		}
		cfg += fmt.Sprintf("dynamicConfigClient:\n  filepath: %s\n  pollInterval: 10s\n", dyn)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "config", "production.yaml"), []byte(cfg), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pgTemporal) startServer() {
	p.t.Helper()
	abs, _ := filepath.Abs(filepath.Join(toolsDir, "server"))
	cmd := exec.Command(abs, "--root", p.dir, "--config", "config", "--env", "production", "--allow-no-auth", "start")
	if p.authz != nil {
		// as the shipped compose file sets it: the internal frontend too
		cmd.Env = append(os.Environ(), "TEMPORAL_SERVICES="+composeServices)
	}
	if p.roles != "" {
		cmd = exec.Command(filepath.Join(bins, "switchyard"), "temporal-server", "--root", p.dir, "--config", "config", "--env", "production", "--roles", p.roles)
	}
	if p.serverLog == nil {
		p.serverLog, _ = os.Create(filepath.Join(p.dir, "server.log"))
	}
	cmd.Stdout, cmd.Stderr = p.serverLog, p.serverLog
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.server = cmd
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := net.DialTimeout("tcp", p.hostPort, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the Temporal server did not listen on %s:\n%s", p.hostPort, p.serverTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		o := client.Options{HostPort: p.hostPort, Logger: quiet{}, Credentials: credentials(p.apiKey)}
		o.ConnectionOptions.TLS, o.ConnectionOptions.TLSDisabled = p.tls, p.tls == nil
		c, err := client.Dial(o)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the Temporal server is not healthy (%v); its log ends:\n%s", err, p.serverTail())
		}
	}
}

// stopServer stops the server as an orchestrator would: SIGTERM, then wait.
func (p *pgTemporal) stopServer() {
	if p.server == nil {
		return
	}
	_ = p.server.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.server.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.server.Process.Kill()
		<-done
	}
	p.server = nil
}

// RestartServer stops the server with SIGTERM, leaves it down a while, and starts it again.
func (p *pgTemporal) RestartServer(down time.Duration) {
	p.t.Helper()
	p.stopServer()
	p.t.Logf("Temporal server stopped (SIGTERM) for %s", down)
	time.Sleep(down)
	p.startServer()
	p.t.Log("Temporal server started again")
}

func (p *pgTemporal) dial() client.Client {
	p.t.Helper()
	return dialWith(p.t, p.hostPort, p.apiKey, p.tls)
}

func (p *pgTemporal) serverTail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
