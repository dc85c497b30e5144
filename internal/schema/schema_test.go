package schema

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/pgtest"
	"github.com/switchyard/switchyard/internal/spec"
)

// startPostgres runs a real PostgreSQL and returns its URL.
func startPostgres(t *testing.T) string { return pgtest.Start(t) }

// service is a spec with goose migrations in a fresh directory.
func service(t *testing.T) *spec.Service {
	dir := t.TempDir()
	for _, d := range []string{"db/expand", "db/contract"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &spec.Service{Name: "api-x", Environment: "test", Dir: dir,
		Migrations: &spec.Migrations{Tool: spec.ToolGoose, Dir: "db", DatabaseEnv: "DB_URL", Contract: spec.NextRelease}}
}

func write(t *testing.T, s *spec.Service, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.Dir, "db", name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	createUsers  = "-- +goose Up\nCREATE TABLE users (id bigserial PRIMARY KEY, name text);\n-- +goose Down\nDROP TABLE users;\n"
	addFullName  = "-- +goose Up\nALTER TABLE users ADD COLUMN full_name text;\nUPDATE users SET full_name = name;\n"
	dropName     = "-- +goose Up\nALTER TABLE users DROP COLUMN name;\n"
	dropNameUndo = dropName + "-- +goose Down\nALTER TABLE users ADD COLUMN name text;\nUPDATE users SET name = full_name;\n"
)

func open(t *testing.T, s *spec.Service, url string) *Runner {
	t.Helper()
	r, err := Open(context.Background(), s, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func names(steps []Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, s.String())
	}
	return strings.Join(out, " | ")
}

func TestAContractRefusesTheVersionsItBrokeUntilADownMigrationUndoesIt(t *testing.T) {
	url := startPostgres(t)
	ctx := context.Background()
	s := service(t)
	write(t, s, "expand/00001_users.sql", createUsers)
	r := open(t, s, url)
	steps, err := r.Expand(ctx, "v1", false)
	if err != nil || names(steps) != "expand for v1: 00001_users.sql" {
		t.Fatalf("v1 expand: %q %v", names(steps), err)
	}
	write(t, s, "expand/00002_full_name.sql", addFullName)
	write(t, s, "contract/00001_drop_name.sql", dropName)
	if steps, err = r.Expand(ctx, "v2", false); err != nil || names(steps) != "expand for v2: 00002_full_name.sql" {
		t.Fatalf("v2 expand: %q %v", names(steps), err)
	}
	// v2's contract is its own: it never runs while v1 serves
	if _, err := r.Contract(ctx, "v2", "v1"); err == nil || !strings.Contains(err.Error(), "v1 serves now and shipped before v2") {
		t.Fatalf("contract under v1: %v", err)
	}
	st, err := r.Contract(ctx, "v2", "v2")
	if err != nil || st.String() != "contract of v2: 00001_drop_name.sql" {
		t.Fatalf("contract: %q %v", st, err)
	}
	if st, err = r.Contract(ctx, "v2", "v2"); err != nil || !st.Again {
		t.Fatalf("a second contract of v2 ran again: %+v %v", st, err)
	}
	// v2 itself still fits; v1 does not
	if _, err := r.Expand(ctx, "v2", false); err != nil {
		t.Fatalf("v2 again: %v", err)
	}
	_, err = r.Expand(ctx, "v1", false)
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("v1 after the contract: %v, want refused", err)
	}
	for _, want := range []string{"v1 needs the schema that 00001_drop_name.sql (the contract of v2, ran ", "00001_drop_name.sql has no down migration", "--force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %s", want, err)
		}
	}
	// with a down migration it runs first, and v1's column is back
	write(t, s, "contract/00001_drop_name.sql", dropNameUndo)
	if steps, err = r.Expand(ctx, "v1", false); err != nil || !strings.HasPrefix(names(steps), "down (undoing the contract of v2): 00001_drop_name.sql | expand for v1") {
		t.Fatalf("v1 with a down migration: %q %v", names(steps), err)
	}
	db, _ := sql.Open("pgx", url)
	defer db.Close()
	if _, err := db.Exec("SELECT name FROM users"); err != nil {
		t.Fatalf("name is not back: %v", err)
	}
	// the next release of v2 contracts again (the contract is in force once more)
	if st, err = r.Contract(ctx, "v2", "v2"); err != nil || st.Again || len(st.Migrations) != 1 {
		t.Fatalf("contract after the down: %+v %v", st, err)
	}
	// and --force goes through without one, recorded
	write(t, s, "contract/00001_drop_name.sql", dropName)
	if steps, err = r.Expand(ctx, "v1", true); err != nil || !strings.HasPrefix(names(steps), "forced: v1 runs on a schema a contract changed under it") {
		t.Fatalf("forced: %q %v", names(steps), err)
	}
	h, err := r.History(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	for _, st := range h {
		phases = append(phases, st.Phase+" "+st.Version)
	}
	if got, want := strings.Join(phases, ", "), "expand v1, expand v2, contract (undone) v2, expand v2, down v2, expand v1, contract v2, forced v1, expand v1"; got != want {
		t.Errorf("history:\n got %s\nwant %s", got, want)
	}
}

func TestTwoWorkersExpandingAtOnceRunEachMigrationOnce(t *testing.T) {
	url := startPostgres(t)
	s := service(t)
	write(t, s, "expand/00001_users.sql", "-- +goose Up\nCREATE TABLE users (id bigserial PRIMARY KEY, name text);\nSELECT pg_sleep(0.5);\n")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			r, err := Open(context.Background(), s, url, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer r.Close()
			_, errs[i] = r.Expand(context.Background(), "v1", false)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	db, _ := sql.Open("pgx", url)
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM switchyard_goose_api_x_expand WHERE version_id = 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("migration 1 recorded %d times (%v), want once", n, err)
	}
}

func TestTheCommandToolGetsTheURLAndVersionAndKeepsTheURLOutOfErrors(t *testing.T) {
	url := startPostgres(t)
	s := service(t)
	out := filepath.Join(s.Dir, "ran")
	script := filepath.Join(s.Dir, "migrate.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$SCHEMA_PHASE $VERSION ${DATABASE_URL%%@*}\" >> "+out+"\n[ \"$SCHEMA_PHASE\" != contract ] || { echo \"cannot reach $DATABASE_URL\"; exit 3; }\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.Migrations.Tool = spec.ToolCommand
	s.Migrations.Command = &spec.MigrationCommands{Expand: []string{"./migrate.sh"}, Contract: []string{"./migrate.sh"}}
	r := open(t, s, url)
	if _, err := r.Expand(context.Background(), "v7", false); err != nil {
		t.Fatal(err)
	}
	_, err := r.Contract(context.Background(), "v7", "v7")
	if err == nil || strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "cannot reach <database URL>") {
		t.Fatalf("contract error: %v", err)
	}
	b, _ := os.ReadFile(out)
	if got := string(b); got != "expand v7 postgres://app\ncontract v7 postgres://app\n" {
		t.Fatalf("the command saw:\n%s", got)
	}
}

func TestANonPostgresURLIsRefusedNamingTheVariable(t *testing.T) {
	s := service(t)
	_, err := Open(context.Background(), s, "mysql://root:secret@db/app", nil)
	if err == nil || !strings.Contains(err.Error(), "migrations.databaseEnv: DB_URL does not hold a postgres:// URL") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
	_ = time.Second
}
