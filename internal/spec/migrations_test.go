package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAnExpandThatDropsOrRenamesIsRefusedNamingFileAndLine(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"db/expand", "db/contract"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		// additive, with a down section that drops: fine
		"db/expand/00001_full_name.sql": "-- +goose Up\nALTER TABLE users ADD COLUMN full_name text;\nALTER TABLE users ALTER COLUMN name DROP NOT NULL;\n-- +goose Down\nALTER TABLE users DROP COLUMN full_name;\n",
		"db/expand/00002_bad.sql":       "-- +goose Up\n-- DROP TABLE in a comment is fine\nALTER TABLE users\n  RENAME COLUMN name TO nom;\ndrop index users_name;\nALTER TABLE users ALTER COLUMN id TYPE bigint;\n",
		"db/contract/00001_drop.sql":    "-- +goose Up\nALTER TABLE users DROP COLUMN name;\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := `service: api
run:
  command: ["./bin/api"]
  ports: {blue: 9001, green: 9002}
router:
  kind: haproxy
  haproxy: {socket: /run/haproxy.sock}
migrations:
  dir: db
  databaseEnv: API_DB_URL
environments:
  production:
`
	path := filepath.Join(dir, "api.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Resolve("production")
	ps := problems(t, err)
	got := ps.Error()
	for _, want := range []string{
		"migrations.dir: expand/00002_bad.sql:4: RENAME COLUMN is not additive (the old version runs on the expanded schema): move it to contract/",
		"expand/00002_bad.sql:5: DROP INDEX",
		"expand/00002_bad.sql:6: ALTER … TYPE",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if len(ps) != 3 || strings.Contains(got, "00001") {
		t.Errorf("want exactly the three lines of 00002_bad.sql, got:\n%s", got)
	}
	// once the bad file is gone the spec is good, with its defaults
	os.Remove(filepath.Join(dir, "db/expand/00002_bad.sql"))
	svc, err := f.Resolve("production")
	if err != nil {
		t.Fatal(err)
	}
	if m := svc.Migrations; m.Tool != ToolGoose || m.Contract != NextRelease || m.Timeout.D().Minutes() != 10 {
		t.Errorf("defaults: %+v", m)
	}
	if d, own := m(svc).ContractDelay(); own || d != 0 {
		t.Errorf("next-release has no delay of its own: %v %v", d, own)
	}
}

func m(s *Service) *Migrations { return s.Migrations }

func TestMigrationsNameWhatIsMissing(t *testing.T) {
	s := &Service{Dir: t.TempDir(), Migrations: &Migrations{Tool: "migrate", Contract: "soon"}}
	var got []string
	s.validateMigrations(func(field, format string, args ...any) { got = append(got, field) })
	if strings.Join(got, " ") != "migrations.databaseEnv migrations.contract migrations.tool" {
		t.Errorf("fields: %v", got)
	}
	s.Migrations = &Migrations{Tool: ToolGoose, Dir: "nowhere", DatabaseEnv: "DB", Contract: "10m"}
	got = nil
	s.validateMigrations(func(field, format string, args ...any) { got = append(got, field) })
	if strings.Join(got, " ") != "migrations.dir migrations.dir" {
		t.Errorf("fields: %v", got)
	}
	if d, own := s.Migrations.ContractDelay(); !own || d.Minutes() != 10 {
		t.Errorf("delay %v %v", d, own)
	}
}
