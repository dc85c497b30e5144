package test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/workflows"
)

// Schema changes (issue 24) on a real PostgreSQL: v1 keeps a user's name
// in "name", v2 in "full_name". Expand adds full_name with a trigger that
// fills each column from the other; contract drops name.

const (
	usersTable = "-- +goose Up\nCREATE TABLE users (id bigserial PRIMARY KEY, name text);\n-- +goose Down\nDROP TABLE users;\n"
	fullName   = `-- +goose Up
ALTER TABLE users ADD COLUMN full_name text;
UPDATE users SET full_name = name;
-- +goose StatementBegin
CREATE FUNCTION users_sync_names() RETURNS trigger AS $$
BEGIN
  IF NEW.full_name IS NULL THEN NEW.full_name := NEW.name; END IF;
  IF NEW.name IS NULL THEN NEW.name := NEW.full_name; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER users_sync_names BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_sync_names();
%s
-- +goose Down
DROP TRIGGER users_sync_names ON users;
DROP FUNCTION users_sync_names();
ALTER TABLE users DROP COLUMN full_name;
`
	dropName     = "-- +goose Up\nDROP TRIGGER users_sync_names ON users;\nALTER TABLE users DROP COLUMN name;\n%s\n"
	dropNameDown = `-- +goose Down
ALTER TABLE users ADD COLUMN name text;
UPDATE users SET name = full_name;
CREATE TRIGGER users_sync_names BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_sync_names();
`
)

// startPostgresDB runs a real PostgreSQL for the service's own data and
// returns its URL and a connection.
func startPostgresDB(t *testing.T) (string, *sql.DB) {
	t.Helper()
	url := pgtest.Start(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return url, db
}

// schemaEnv is a service with goose migrations in db/ beside its spec,
// its database URL in a worker variable of its own.
func schemaEnv(t *testing.T, contract string, o opts) (*env, *sql.DB, func(name, body string)) {
	t.Helper()
	url, db := startPostgresDB(t)
	v := fmt.Sprintf("SWITCHYARD_TEST_DB_%d", freePort(t))
	os.Setenv(v, url)
	t.Cleanup(func() { os.Unsetenv(v) })
	o.runMore = fmt.Sprintf("\n  secretEnv: {DEMO_DB_URL: %s}", v)
	o.extra = fmt.Sprintf("migrations: {dir: db, databaseEnv: %s, contract: %q}", v, contract)
	// the spec is checked when it is loaded: its directories come first
	dir := t.TempDir()
	o.specDir = dir
	for _, d := range []string{"db/expand", "db/contract"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, "db", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("expand/00001_users.sql", usersTable)
	return newEnv(t, o), db, write
}

// writers is load with writes: each round creates a user through the
// router and reads it back; every name written is kept to read again.
type writers struct {
	url      string
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok, fail int
	failures []string
	written  map[string]string // id → name
}

func startWriters(t *testing.T, url string, n int) *writers {
	w := &writers{url: strings.TrimSuffix(url, "/"), stop: make(chan struct{}), written: map[string]string{}}
	c := &http.Client{Timeout: 5 * time.Second}
	for g := range n {
		w.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-w.stop:
					return
				case <-time.After(40 * time.Millisecond): // ≤ 25 writes and reads per second each
				}
				name := fmt.Sprintf("user-%d-%d", g, i)
				id, err := w.do(c, http.MethodPost, "/users?name="+name, "")
				if err == nil {
					id = strings.TrimSpace(id)
					_, err = w.do(c, http.MethodGet, "/users/"+id, name)
				}
				w.mu.Lock()
				if err != nil {
					w.fail++
					w.failures = append(w.failures, err.Error())
				} else {
					w.ok++
					w.written[id] = name
				}
				w.mu.Unlock()
			}
		})
	}
	return w
}

func (w *writers) do(c *http.Client, method, path, want string) (string, error) {
	req, _ := http.NewRequest(method, w.url+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %d %s (%s)", method, path, resp.StatusCode, body, resp.Header.Get("X-Version"))
	}
	if want != "" && body != want {
		return "", fmt.Errorf("%s %s: %q, want %q", method, path, body, want)
	}
	return body, nil
}

func (w *writers) halt(t *testing.T, least int) {
	t.Helper()
	close(w.stop)
	w.wg.Wait()
	t.Logf("writes and reads: %d ok, %d failed", w.ok, w.fail)
	if w.fail > 0 {
		t.Fatalf("%d of %d rounds failed; first: %v", w.fail, w.ok+w.fail, w.failures[:min(3, len(w.failures))])
	}
	if w.ok < least {
		t.Fatalf("only %d rounds, want %d: the load did not run", w.ok, least)
	}
}

// readAll reads every user written so far through the router: each must
// come back with its name from whichever version serves.
func (w *writers) readAll(t *testing.T) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	bad := 0
	for id, name := range w.written {
		if _, err := w.do(c, http.MethodGet, "/users/"+id, name); err != nil {
			bad++
			if bad <= 3 {
				t.Errorf("user %s: %v", id, err)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d users unreadable", bad, len(w.written))
	}
	t.Logf("all %d users written so far read back intact", len(w.written))
}

// appliedOnce checks each migration of a phase's goose table was applied once.
func appliedOnce(t *testing.T, db *sql.DB, svc, phase string, want int) {
	t.Helper()
	table := "switchyard_goose_" + strings.ReplaceAll(svc, "-", "_") + "_" + phase
	rows, err := db.Query(fmt.Sprintf("SELECT version_id, count(*) FROM %s WHERE version_id > 0 AND is_applied GROUP BY version_id ORDER BY version_id", table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var v, c int
		if err := rows.Scan(&v, &c); err != nil {
			t.Fatal(err)
		}
		if c != 1 {
			t.Errorf("%s migration %d applied %d times", phase, v, c)
		}
		n++
	}
	if n != want {
		t.Errorf("%s: %d migrations applied, want %d", phase, n, want)
	}
}

func TestASchemaChangeRollsOutAndBackAndARollbackKnowsTheContract(t *testing.T) {
	e, db, write := schemaEnv(t, "0s", opts{scaleDown: 0, steps: []int{25, 50, 100}, bake: 2 * time.Second})
	v1 := e.given("v1")
	if got := fmt.Sprint(v1.Status.Schema); !strings.Contains(got, "expand for v1: 00001_users.sql") {
		t.Fatalf("v1's schema steps: %s", got)
	}
	w := startWriters(t, e.url, 2)

	// v2's expand and contract land in the repository
	write("expand/00002_full_name.sql", fmt.Sprintf(fullName, ""))
	write("contract/00001_drop_name.sql", fmt.Sprintf(dropName, ""))

	// an abort mid-rollout: v1 serves again, every user readable
	run := e.start("v2")
	e.waitFor("v2 takes traffic", func(st *starterStatus) bool { return st.Weights.Of(st.Target) > 0 })
	time.Sleep(time.Second) // both versions write for a while
	if _, err := e.starter.Control(context.Background(), e.svc.Name, "test", workflows.Abort, workflows.AbortRequest{Reason: "schema test", By: "test"}); err != nil {
		t.Fatal(err)
	}
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != workflows.ErrRolledBack {
		t.Fatalf("abort: %+v %v", o, err)
	}
	w.readAll(t)

	// v2 again, promoted under the writes; its contract runs once v1 is retired
	run = e.start("v2")
	o, err = e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != "" {
		t.Fatalf("v2: %+v %v", o, err)
	}
	w.halt(t, 50)
	steps := fmt.Sprint(o.Status.Schema)
	for _, want := range []string{"expand for v2: nothing to apply", "contract of v2: 00001_drop_name.sql"} {
		if !strings.Contains(steps, want) {
			t.Errorf("v2's schema steps lack %q: %s", want, steps)
		}
	}
	out, code := cli(t, e, "status", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "schema       contract of v2: 00001_drop_name.sql (")
	out, code = cli(t, e, "history", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "schema: expand for v2: nothing to apply (expand level 2, ", "; contract of v2: 00001_drop_name.sql (contract level 1, ",
		"schema: expand for v2: 00002_full_name.sql (expand level 2, ", "schema: expand for v1: 00001_users.sql (expand level 1, ")
	t.Logf("history:\n%s", out)
	w.readAll(t)

	// back to v1 after the contract: refused, naming the migration; v2 keeps serving
	live := e.weights()
	out, code = cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1")
	expect(t, out, code, 4, "v1 needs the schema that 00001_drop_name.sql (the contract of v2, ran ",
		"00001_drop_name.sql has no down migration: add a down migration, or go back with --force")
	if got := e.weights(); got != live {
		t.Fatalf("the refused rollback moved traffic: %s → %s", live, got)
	}
	t.Logf("refused:\n%s", lastLines(out, 3))

	// with a down migration for the contract, it runs first and v1 is back with its data
	write("contract/00001_drop_name.sql", fmt.Sprintf(dropName, dropNameDown))
	out, code = cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1")
	expect(t, out, code, 0, "schema: down (undoing the contract of v2): 00001_drop_name.sql", "promoted")
	w.readAll(t)
	appliedOnce(t, db, e.svc.Name, "expand", 2)
	var name string
	if err := db.QueryRow("SELECT name FROM users ORDER BY id DESC LIMIT 1").Scan(&name); err != nil || name == "" {
		t.Fatalf("name after the down migration: %q %v", name, err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitForQuery waits until PostgreSQL runs a statement containing text.
func waitForQuery(t *testing.T, db *sql.DB, text string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()", "%"+text+"%").Scan(&n); err == nil && n > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("PostgreSQL never ran %q", text)
}

func TestAWorkerKilledMidMigrationRunsEachMigrationOnce(t *testing.T) {
	e, db, write := schemaEnv(t, "0s", opts{noWorker: true, steps: []int{50, 100}})
	w := startWorker(t, e)
	e.given("v1")
	// each phase is slow enough to be killed in: the kill lands inside
	// the migration's transaction
	write("expand/00002_full_name.sql", fmt.Sprintf(fullName, "SELECT pg_sleep(2.5) AS expand_sleep;"))
	write("contract/00001_drop_name.sql", fmt.Sprintf(dropName, "SELECT pg_sleep(2.5) AS contract_sleep;"))
	run := e.start("v2")
	waitForQuery(t, db, "expand_sleep")
	w = killAndRestart(t, e, w, "during the expand migration")
	waitForQuery(t, db, "contract_sleep")
	killAndRestart(t, e, w, "during the contract migration")
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != "" {
		t.Fatalf("v2: %+v %v", o, err)
	}
	// the database: each migration applied once
	appliedOnce(t, db, e.svc.Name, "expand", 2)
	appliedOnce(t, db, e.svc.Name, "contract", 1)
	var cols int
	if err := db.QueryRow("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'name'").Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("name still there after the contract (%d, %v)", cols, err)
	}
	// the history: one Schema activity per phase, each tried again on the new worker
	h := history(t, e, run)
	kinds := map[int64]string{}
	var attempts []int32
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			kinds[ev.EventId] = a.ActivityType.GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && kinds[a.ScheduledEventId] == "Schema" {
			attempts = append(attempts, a.Attempt)
		}
	}
	if fmt.Sprint(attempts) != "[2 2]" {
		t.Fatalf("Schema activities' attempts %v, want [2 2] (expand and contract, each retried once after the kill)", attempts)
	}
	steps := fmt.Sprint(o.Status.Schema)
	for _, want := range []string{"expand for v2: 00002_full_name.sql", "contract of v2: 00001_drop_name.sql"} {
		if !strings.Contains(steps, want) {
			t.Errorf("schema steps lack %q: %s", want, steps)
		}
	}
	t.Logf("schema steps: %s", steps)
	record(t, h, "deployment_schema_expand_contract_after_worker_kills.json")
}

func TestInAReleaseTheContractRunsOnlyOnceTheWholeEnvironmentIsPromoted(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db")
	for _, d := range []string{"expand", "contract"} {
		if err := os.MkdirAll(filepath.Join(db, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(db, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("expand/00001_users.sql", usersTable)
	dbs, vars := map[string]*sql.DB{}, map[string]string{}
	for _, env := range []string{"staging", "production"} {
		url, h := startPostgresDB(t)
		dbs[env], vars[env] = h, fmt.Sprintf("SWITCHYARD_TEST_DB_%d", freePort(t))
		os.Setenv(vars[env], url)
		t.Cleanup(func() { os.Unsetenv(vars[env]) })
	}
	e := newReleaseEnvWith(t, "", "1s", true, func(svc, env string) (string, string) {
		if svc != "backend" {
			return "", ""
		}
		return ", secretEnv: {DEMO_DB_URL: " + vars[env] + "}",
			fmt.Sprintf("    migrations: {dir: %s, databaseEnv: %s, contract: 0s}\n", db, vars[env])
	})
	e.run("v1", "v1")
	write("expand/00002_full_name.sql", fmt.Sprintf(fullName, ""))
	write("contract/00001_drop_name.sql", fmt.Sprintf(dropName, ""))
	st := e.run("v2", "v2")
	if st.Phase != workflows.ReleasePromoted {
		t.Fatalf("release: %s", st.Phase)
	}
	for _, env := range []string{"staging", "production"} {
		back, err := e.starter.Status(context.Background(), e.svc("backend"), env)
		if err != nil {
			t.Fatal(err)
		}
		front, err := e.starter.Status(context.Background(), e.svc("frontend"), env)
		if err != nil {
			t.Fatal(err)
		}
		var contract *time.Time
		for _, s := range back.Schema {
			if s.Phase == "contract" && strings.Join(s.Migrations, ",") == "00001_drop_name.sql" {
				contract = &s.At
			}
		}
		if contract == nil {
			t.Fatalf("%s: the backend's contract did not run: %v", env, back.Schema)
		}
		// the frontend (after the backend) reached all traffic before the backend's contract
		full := front.Timeline[len(front.Timeline)-1]
		if full.Weights.Of(front.Target) != 100 || !contract.After(full.At) {
			t.Fatalf("%s: the contract ran at %s, the frontend reached %s at %s", env, contract.Format(time.RFC3339Nano), full.Weights, full.At.Format(time.RFC3339Nano))
		}
		t.Logf("%s: frontend at 100%% %s, backend's contract %s (%s later)", env, full.At.Format("15:04:05.000"), contract.Format("15:04:05.000"), contract.Sub(full.At).Round(time.Millisecond))
		var cols int
		if err := dbs[env].QueryRow("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'name'").Scan(&cols); err != nil || cols != 0 {
			t.Fatalf("%s: name still there (%d, %v)", env, cols, err)
		}
	}
	// the release's own record names the phases
	found := false
	for _, s := range st.Services {
		if s.Service == e.svc("backend") && s.Environment == "production" {
			found = strings.Contains(fmt.Sprint(s.Schema), "contract of v2: 00001_drop_name.sql")
		}
	}
	if !found {
		t.Errorf("the release status lacks the backend's production contract: %+v", st.Services)
	}
}
