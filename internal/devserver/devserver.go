// Package devserver runs a Temporal server inside this process on SQLite
// (a file, so state survives a restart, or memory for tests), with the
// Switchyard search attributes registered, and optionally its Web UI.
package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// Options configure a Server.
type Options struct {
	// DBFile is the SQLite file; empty keeps everything in memory.
	DBFile string
	// IP and Port of the frontend; Port 0 picks a free one.
	IP   string
	Port int
	// UIPort serves the Web UI when non-zero.
	UIPort    int
	Namespace string
	// LogLevel of the server's own log (default error: it is chatty).
	LogLevel string
	// SearchAttributes are created in the namespace at start.
	SearchAttributes map[string]enumspb.IndexedValueType
}

// Server is a running embedded Temporal server.
type Server struct {
	srv      temporal.Server
	ui       *uiserver.Server
	HostPort string
	UIURL    string
	opts     Options
}

// Start starts the server and returns once its frontend accepts clients.
func Start(o Options) (*Server, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.LogLevel == "" {
		o.LogLevel = "error"
	}
	if o.Port == 0 {
		p, err := freePort(o.IP)
		if err != nil {
			return nil, err
		}
		o.Port = p
	} else if err := portFree(o.IP, o.Port); err != nil {
		return nil, fmt.Errorf("devserver: frontend port %d is in use (another switchyard dev or temporal server?): %w", o.Port, err)
	}
	if o.UIPort != 0 {
		if err := portFree(o.IP, o.UIPort); err != nil {
			return nil, fmt.Errorf("devserver: Web UI port %d is in use: %w", o.UIPort, err)
		}
	}
	sqlCfg := &config.SQL{PluginName: sqliteplugin.PluginName, ConnectAttributes: map[string]string{}}
	if o.DBFile == "" {
		sqlCfg.ConnectAttributes["mode"] = "memory"
		sqlCfg.ConnectAttributes["cache"] = "shared"
		sqlCfg.DatabaseName = "switchyard-" + strconv.Itoa(o.Port)
	} else {
		sqlCfg.ConnectAttributes["mode"] = "rwc"
		sqlCfg.ConnectAttributes["_journal_mode"] = "wal"
		sqlCfg.ConnectAttributes["_synchronous"] = "2"
		sqlCfg.DatabaseName = o.DBFile
		if err := os.MkdirAll(filepath.Dir(o.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("devserver: %w", err)
		}
		if _, err := os.Stat(o.DBFile); errors.Is(err, os.ErrNotExist) {
			if err := sqlite.SetupSchema(sqlCfg); err != nil {
				return nil, fmt.Errorf("devserver: set up schema in %s: %w", o.DBFile, err)
			}
		}
	}
	ns, err := sqlite.NewNamespaceConfig("active", o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace: %w", err)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("devserver: create namespace: %w", err)
	}
	cfg, err := serverConfig(o, sqlCfg)
	if err != nil {
		return nil, err
	}
	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Stdout: true, Level: o.LogLevel}))
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, err
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
	if err != nil {
		return nil, err
	}
	dc := dynamicconfig.StaticClient{
		// a rollout's controls should reach the workflow at once
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():              true,
		dynamicconfig.FrontendEnableUpdateWorkflowExecutionAsyncAccepted.Key(): true,
		dynamicconfig.FrontendEnableSchedules.Key():                            true,
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():            true,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dc),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devserver: start: %w", err)
	}
	s := &Server{srv: srv, HostPort: net.JoinHostPort(o.IP, strconv.Itoa(o.Port)), opts: o}
	if err := s.waitReady(); err != nil {
		_ = srv.Stop()
		return nil, err
	}
	if o.UIPort != 0 {
		s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			TemporalGRPCAddress: s.HostPort, Host: o.IP, Port: o.UIPort, EnableUI: true,
			DefaultNamespace: o.Namespace, HideLogs: true, Distribution: "switchyard",
			CORS: uiconfig.CORS{CookieInsecure: true}, DisableNewsFetch: true,
		}))
		go func() { _ = s.ui.Start() }()
		s.UIURL = fmt.Sprintf("http://%s:%d", o.IP, o.UIPort)
	}
	return s, nil
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := client.Dial(client.Options{HostPort: s.HostPort, Namespace: s.opts.Namespace, Logger: quiet{}})
		if err == nil {
			_, err = c.CheckHealth(context.Background(), &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devserver: frontend %s not ready after 60s: %w", s.HostPort, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the UI and the server.
func (s *Server) Stop() error {
	if s.ui != nil {
		s.ui.Stop()
	}
	return s.srv.Stop()
}

func serverConfig(o Options, sqlCfg *config.SQL) (*config.Config, error) {
	ports, err := internalPorts(o)
	if err != nil {
		return nil, err
	}
	svc := func(grpc, membership int, frontend bool) config.Service {
		rpc := config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnLocalHost: true}
		if frontend {
			rpc.BindOnLocalHost, rpc.BindOnIP = false, o.IP
		}
		return config.Service{RPC: rpc}
	}
	cfg := &config.Config{}
	cfg.Global.Membership = config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: "127.0.0.1"}
	cfg.Global.Metrics = &metrics.Config{Prometheus: &metrics.PrometheusConfig{
		ListenAddress: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[7])), HandlerPath: "/metrics"}}
	cfg.Persistence = config.Persistence{
		DefaultStore: sqliteplugin.PluginName, VisibilityStore: sqliteplugin.PluginName, NumHistoryShards: 1,
		DataStores: map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
	}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace: false, FailoverVersionIncrement: 10,
		MasterClusterName: "active", CurrentClusterName: "active",
		ClusterInformation: map[string]cluster.ClusterInformation{"active": {
			Enabled: true, InitialFailoverVersion: 1, RPCAddress: net.JoinHostPort(o.IP, strconv.Itoa(o.Port)),
		}},
	}
	cfg.DCRedirectionPolicy = config.DCRedirectionPolicy{Policy: "noop"}
	cfg.Services = map[string]config.Service{
		"frontend": svc(o.Port, ports[0], true),
		"history":  svc(ports[1], ports[2], false),
		"matching": svc(ports[3], ports[4], false),
		"worker":   svc(ports[5], ports[6], false),
	}
	cfg.Archival = config.Archival{History: config.HistoryArchival{State: "disabled"}, Visibility: config.VisibilityArchival{State: "disabled"}}
	cfg.NamespaceDefaults = config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
		History: config.HistoryArchivalNamespaceDefaults{State: "disabled"}, Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"}}}
	cfg.PublicClient = config.PublicClient{HostPort: net.JoinHostPort(o.IP, strconv.Itoa(o.Port))}
	return cfg, nil
}

// internalPorts picks the history, matching and worker services' ports. With
// a database file they are kept beside it and reused: a restarted server
// then has the identity its membership table remembers, instead of waiting
// for the dead one's entries to expire (about a minute) before it owns its
// shard again.
func internalPorts(o Options) ([]int, error) {
	var saved []int
	path := ""
	if o.DBFile != "" {
		path = o.DBFile + ".ports"
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &saved) == nil && len(saved) == 8 {
			ok := true
			for _, p := range saved {
				ok = ok && portFree(o.IP, p) == nil
			}
			if ok {
				return saved, nil
			}
		}
	}
	ports := make([]int, 0, 8)
	for i := 0; i < 8; i++ {
		p, err := freePort(o.IP)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	if path != "" {
		b, _ := json.Marshal(ports)
		_ = os.WriteFile(path, b, 0o644)
	}
	return ports, nil
}

// handedOut keeps FreePort from giving one port twice in a process.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a port free on ip, below Linux's ephemeral range
// (32768-60999): a port from that range, closed again, can be taken by any
// outgoing connection before its server binds it, which happened here under
// load. Ports below 32768 also fit the SQL schemas' smallint.
func FreePort(ip string) (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for try := 0; try < 500; try++ {
		p := 20000 + rand.IntN(12700)
		if handedOut.ports[p] || portFree(ip, p) != nil {
			continue
		}
		handedOut.ports[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("devserver: no free port on %s between 20000 and 32700", ip)
}

func freePort(ip string) (int, error) { return FreePort(ip) }

func portFree(ip string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// quiet drops the SDK client's log while waiting for the server.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
