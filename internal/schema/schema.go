// Package schema runs a service's database migrations as expand and
// contract, and keeps Switchyard's own record of them in the same
// database: which version first shipped when, which contract ran for which
// version, and which was undone. That record is what lets a rollback (a
// redeploy of an older version) know whether the schema still fits it.
//
// Every phase runs under a PostgreSQL advisory lock held for the whole
// phase, so two workers (or a retry beside a lost attempt) never run one
// twice; goose applies each migration in a transaction with its version
// row, so a worker killed mid-migration leaves nothing half-applied.
package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver, as "pgx"

	"github.com/switchyard/switchyard/internal/spec"
)

// Step is one phase that ran, as recorded.
type Step struct {
	Phase string `json:"phase"` // expand, contract, down, forced
	// Version is the version the phase ran for: the one shipping (expand),
	// the one whose contract it was (contract, down), the one forced through.
	Version    string    `json:"version"`
	Migrations []string  `json:"migrations,omitempty"`
	Level      int64     `json:"level"` // the tool's schema version after it (goose)
	At         time.Time `json:"at"`
	// Again: it had run already (a retry after a lost worker, a second call).
	Again bool `json:"again,omitempty"`
}

func (s Step) String() string {
	what := "nothing to apply"
	if len(s.Migrations) > 0 {
		what = strings.Join(s.Migrations, ", ")
	}
	again := ""
	if s.Again {
		again = " (had run already)"
	}
	switch s.Phase {
	case "contract":
		return fmt.Sprintf("contract of %s: %s%s", s.Version, what, again)
	case "down":
		return fmt.Sprintf("down (undoing the contract of %s): %s", s.Version, what)
	case "forced":
		return fmt.Sprintf("forced: %s runs on a schema a contract changed under it (%s)", s.Version, what)
	}
	return fmt.Sprintf("expand for %s: %s%s", s.Version, what, again)
}

// errNothing: the version has no contract of its own (none in its
// directory when it shipped, or it shipped before the spec had migrations).
var errNothing = errors.New("no contract")

// NoContract says Contract found nothing to run: the version's directory
// held no contract migration when it first shipped.
func NoContract(err error) bool { return errors.Is(err, errNothing) }

// LevelText says which goose version the phase left its table at:
// "expand level 2", "contract level 0".
func (s Step) LevelText() string {
	table := "contract"
	if s.Phase == "expand" {
		table = "expand"
	}
	return fmt.Sprintf("%s level %d", table, s.Level)
}

// RefusedError is a version the schema no longer fits, with no way back
// the spec allows: never retried.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// Permanent says no retry fixes it (rollout.IsPermanent).
func (e *RefusedError) Permanent() bool { return true }

// tool is one way to run migrations.
type tool interface {
	// up applies a phase's migrations, up to level (0: all); it returns
	// the level after and the migrations applied above since.
	up(ctx context.Context, phase string, since, upto int64, version string) (level int64, applied []string, err error)
	// maxLevel is the highest migration of a phase in the directory (0 for a command).
	maxLevel(phase string) (int64, error)
	// down undoes the contract migrations above level, each named; it
	// refuses, naming them, when one has no down migration.
	down(ctx context.Context, level int64, version string) (applied []string, err error)
	canDown(level int64) (missing []string, err error)
}

// Runner runs one service's migrations in one environment.
type Runner struct {
	db       *sql.DB
	svc, env string
	tool     tool
}

// Open connects to the database named by the worker's variable and
// readies the record.
func Open(ctx context.Context, s *spec.Service, url string, environ []string) (*Runner, error) {
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return nil, &RefusedError{fmt.Sprintf("migrations.databaseEnv: %s does not hold a postgres:// URL: Switchyard keeps its schema record and lock in PostgreSQL", s.Migrations.DatabaseEnv)}
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("database from %s: %w", s.Migrations.DatabaseEnv, redact(err, url))
	}
	db.SetMaxOpenConns(4)
	r := &Runner{db: db, svc: s.Name, env: s.Environment}
	switch s.Migrations.Tool {
	case spec.ToolCommand:
		r.tool = &command{m: s.Migrations, dir: s.Dir, environ: environ, url: url, db: db, svc: s.Name, env: s.Environment}
	default:
		r.tool = &gooseTool{db: db, m: s.Migrations, specDir: s.Dir, table: tableName(s.Name)}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database from %s: %w", s.Migrations.DatabaseEnv, redact(err, url))
	}
	return r, nil
}

// Close closes the connections.
func (r *Runner) Close() error { return r.db.Close() }

// redact keeps the URL (and its password) out of an error.
func redact(err error, url string) error {
	if err == nil || url == "" || !strings.Contains(err.Error(), url) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), url, "<database URL>"))
}

const ddl = `
CREATE TABLE IF NOT EXISTS switchyard_schema_versions (
	service text NOT NULL, environment text NOT NULL, version text NOT NULL,
	seq bigserial, contract_upto bigint NOT NULL DEFAULT 0,
	first_seen timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (service, environment, version));
CREATE TABLE IF NOT EXISTS switchyard_schema_log (
	id bigserial PRIMARY KEY, service text NOT NULL, environment text NOT NULL,
	phase text NOT NULL, version text NOT NULL, migrations text NOT NULL DEFAULT '',
	level bigint NOT NULL DEFAULT 0, at timestamptz NOT NULL DEFAULT now(), undone_at timestamptz);`

func tableName(svc string) string {
	return "switchyard_goose_" + strings.ReplaceAll(svc, "-", "_")
}

// lock holds the service's advisory lock (every service's record shares
// two tables: the first run of two services at once may still race on
// creating them, and its retry finds them made) on a connection of its own until
// unlock (or until the connection dies with its process).
func (r *Runner) lock(ctx context.Context) (unlock func(), err error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("switchyard/" + r.svc + "/" + r.env))
	key := int64(h.Sum64())
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		conn.Close()
		return nil, fmt.Errorf("taking the schema lock: %w", err)
	}
	// the record's tables, made under the lock: two first runs would race
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		conn.Close()
		return nil, fmt.Errorf("making the schema record: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", key)
		conn.Close()
	}, nil
}

// Expand makes the schema fit the version about to get traffic: a contract
// that removed what it needs is undone first (down migrations), or gone
// through with force; then the expand set runs. The steps that ran come back.
func (r *Runner) Expand(ctx context.Context, version string, force bool) ([]Step, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var steps []Step
	seq, known, err := r.seq(ctx, version)
	if err != nil {
		return nil, err
	}
	if known {
		back, err := r.fit(ctx, version, seq, force)
		if err != nil {
			return nil, err
		}
		steps = append(steps, back...)
	} else {
		upto, err := r.tool.maxLevel("contract")
		if err != nil {
			return nil, err
		}
		if _, err := r.db.ExecContext(ctx, `INSERT INTO switchyard_schema_versions (service, environment, version, contract_upto)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, r.svc, r.env, version, upto); err != nil {
			return nil, err
		}
	}
	st, err := r.run(ctx, "expand", version, 0)
	if err != nil {
		return steps, err
	}
	return append(steps, st), nil
}

// Contract runs the contract of owner (the migrations its directory held
// when it first shipped), once; live is the version serving now, which
// must be owner or newer: a contract never runs under a version it breaks.
func (r *Runner) Contract(ctx context.Context, owner, live string) (Step, error) {
	unlock, err := r.lock(ctx)
	if err != nil {
		return Step{}, err
	}
	defer unlock()
	ownerSeq, known, err := r.seq(ctx, owner)
	if err != nil {
		return Step{}, err
	}
	if !known {
		// it shipped before the spec had migrations: it has no contract
		return Step{}, errNothing
	}
	if liveSeq, ok, err := r.seq(ctx, live); err != nil {
		return Step{}, err
	} else if ok && liveSeq < ownerSeq {
		return Step{}, &RefusedError{fmt.Sprintf("%s serves now and shipped before %s: the contract of %s would remove what it needs", live, owner, owner)}
	}
	var upto int64
	if err := r.db.QueryRowContext(ctx, `SELECT contract_upto FROM switchyard_schema_versions WHERE service=$1 AND environment=$2 AND version=$3`,
		r.svc, r.env, owner).Scan(&upto); err != nil {
		return Step{}, err
	}
	if upto == 0 {
		if _, isCmd := r.tool.(*command); !isCmd {
			return Step{}, errNothing
		}
	}
	var prev Step
	var ms string
	err = r.db.QueryRowContext(ctx, `SELECT migrations, level, at FROM switchyard_schema_log
		WHERE service=$1 AND environment=$2 AND phase='contract' AND version=$3 AND undone_at IS NULL ORDER BY id DESC LIMIT 1`,
		r.svc, r.env, owner).Scan(&ms, &prev.Level, &prev.At)
	if err == nil {
		prev.Phase, prev.Version, prev.Again = "contract", owner, true
		if ms != "" {
			prev.Migrations = strings.Split(ms, ",")
		}
		return prev, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Step{}, err
	}
	return r.run(ctx, "contract", owner, upto)
}

// run applies a phase and records it with what it applied since the
// phase's last record (so a retry after a crash between the two still
// names the migrations it applied).
func (r *Runner) run(ctx context.Context, phase, version string, upto int64) (Step, error) {
	var since int64
	if err := r.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(level), 0) FROM switchyard_schema_log
		WHERE service=$1 AND environment=$2 AND phase=$3 AND undone_at IS NULL`, r.svc, r.env, phase).Scan(&since); err != nil {
		return Step{}, err
	}
	level, applied, err := r.tool.up(ctx, phase, since, upto, version)
	if err != nil {
		return Step{}, fmt.Errorf("%s migrations: %w", phase, err)
	}
	st := Step{Phase: phase, Version: version, Migrations: applied, Level: level}
	return st, r.record(ctx, &st)
}

func (r *Runner) record(ctx context.Context, st *Step) error {
	return r.db.QueryRowContext(ctx, `INSERT INTO switchyard_schema_log (service, environment, phase, version, migrations, level)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING at`, r.svc, r.env, st.Phase, st.Version, strings.Join(st.Migrations, ","), st.Level).Scan(&st.At)
}

func (r *Runner) seq(ctx context.Context, version string) (int64, bool, error) {
	var seq int64
	err := r.db.QueryRowContext(ctx, `SELECT seq FROM switchyard_schema_versions WHERE service=$1 AND environment=$2 AND version=$3`,
		r.svc, r.env, version).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return seq, err == nil, err
}

// contractRan is a contract in force.
type contractRan struct {
	id         int64
	owner      string
	migrations []string
	level      int64
	at         time.Time
}

// fit undoes or forces through the contracts in force that belong to
// versions shipped after version: each removed what version needs.
func (r *Runner) fit(ctx context.Context, version string, seq int64, force bool) ([]Step, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT l.id, l.version, l.migrations, l.level, l.at FROM switchyard_schema_log l
		JOIN switchyard_schema_versions v ON v.service=l.service AND v.environment=l.environment AND v.version=l.version
		WHERE l.service=$1 AND l.environment=$2 AND l.phase='contract' AND l.undone_at IS NULL AND v.seq > $3 ORDER BY l.id`, r.svc, r.env, seq)
	if err != nil {
		return nil, err
	}
	var breaking []contractRan
	for rows.Next() {
		var c contractRan
		var ms string
		if err := rows.Scan(&c.id, &c.owner, &ms, &c.level, &c.at); err != nil {
			rows.Close()
			return nil, err
		}
		if ms != "" {
			c.migrations = strings.Split(ms, ",")
		}
		breaking = append(breaking, c)
	}
	rows.Close()
	if len(breaking) == 0 {
		return nil, nil
	}
	// the level to go back to: the contract level before the first breaking one
	var to int64
	if err := r.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(level), 0) FROM switchyard_schema_log
		WHERE service=$1 AND environment=$2 AND phase='contract' AND undone_at IS NULL AND id < $3`, r.svc, r.env, breaking[0].id).Scan(&to); err != nil {
		return nil, err
	}
	var names []string
	for _, c := range breaking {
		names = append(names, fmt.Sprintf("%s (the contract of %s, ran %s)", orNone(c.migrations), c.owner, c.at.UTC().Format(time.RFC3339)))
	}
	removed := strings.Join(names, "; ")
	missing, err := r.tool.canDown(to)
	if err != nil {
		return nil, err
	}
	if len(missing) == 0 {
		applied, err := r.tool.down(ctx, to, version)
		if err != nil {
			return nil, fmt.Errorf("down migrations: %w", err)
		}
		if _, err := r.db.ExecContext(ctx, `UPDATE switchyard_schema_log SET undone_at=now() WHERE service=$1 AND environment=$2 AND phase='contract' AND undone_at IS NULL AND id >= $3`,
			r.svc, r.env, breaking[0].id); err != nil {
			return nil, err
		}
		st := Step{Phase: "down", Version: breaking[len(breaking)-1].owner, Migrations: applied, Level: to}
		return []Step{st}, r.record(ctx, &st)
	}
	if !force {
		return nil, &RefusedError{fmt.Sprintf("%s needs the schema that %s removed, and %s: add a down migration, or go back with --force (%s may then fail on the schema)",
			version, removed, strings.Join(missing, ", "), version)}
	}
	st := Step{Phase: "forced", Version: version, Migrations: []string{removed}}
	return []Step{st}, r.record(ctx, &st)
}

func orNone(ms []string) string {
	if len(ms) == 0 {
		return "its contract"
	}
	return strings.Join(ms, ", ")
}

// History is the recorded steps of the service here, oldest first (the last n).
func (r *Runner) History(ctx context.Context, n int) ([]Step, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT phase, version, migrations, level, at, undone_at IS NOT NULL FROM (
		SELECT * FROM switchyard_schema_log WHERE service=$1 AND environment=$2 ORDER BY id DESC LIMIT $3) l ORDER BY id`, r.svc, r.env, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Step
	for rows.Next() {
		var st Step
		var ms string
		var undone bool
		if err := rows.Scan(&st.Phase, &st.Version, &ms, &st.Level, &st.At, &undone); err != nil {
			return nil, err
		}
		if ms != "" {
			st.Migrations = strings.Split(ms, ",")
		}
		if undone {
			st.Phase += " (undone)"
		}
		out = append(out, st)
	}
	return out, rows.Err()
}
