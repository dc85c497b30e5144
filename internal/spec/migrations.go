package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Migrations change the service's database schema in two phases that
// blue-green survives. Expand (additive: the old and the new version both
// run on it) runs before the new slot gets traffic; contract (removes what
// only the old version needed) runs once the old slot is retired, by
// default when the next version ships. A rollback to a version that needs
// what a contract removed is refused unless the contract has a down
// migration (run first) or the operator forces it.
type Migrations struct {
	// Tool is goose (SQL files in Dir/expand and Dir/contract, run with
	// github.com/pressly/goose/v3) or command (Command's commands).
	Tool MigrationTool `yaml:"tool" json:"tool"`
	// Dir holds expand/ and contract/ (goose); relative to the spec.
	Dir string `yaml:"dir" json:"dir,omitempty"`
	// DatabaseEnv names the worker's variable holding the database URL
	// (postgres://…): the URL itself never enters the spec or the history.
	DatabaseEnv string `yaml:"databaseEnv" json:"databaseEnv"`
	// Contract says when the contract runs: "next-release" (default: the
	// contract of vN runs when vN+1 is promoted) or a duration after this
	// version is promoted and the old slot retired ("0s": at once).
	Contract string `yaml:"contract" json:"contract,omitempty"`
	// Command is what tool command runs; each gets DATABASE_URL, VERSION
	// and SCHEMA_PHASE. Down is optional: without it a contract cannot be undone.
	Command *MigrationCommands `yaml:"command" json:"command,omitempty"`
	// Timeout bounds one phase (default 10m).
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// MigrationCommands are the commands of tool command.
type MigrationCommands struct {
	Expand   []string `yaml:"expand" json:"expand"`
	Contract []string `yaml:"contract" json:"contract"`
	Down     []string `yaml:"down" json:"down,omitempty"`
}

// MigrationTool is how migrations run.
type MigrationTool string

// The migration tools.
const (
	ToolGoose   MigrationTool = "goose"
	ToolCommand MigrationTool = "command"
)

// NextRelease is the default contract timing.
const NextRelease = "next-release"

// ContractDelay is how long after promotion this version's own contract
// runs, or false when it waits for the next release.
func (m *Migrations) ContractDelay() (time.Duration, bool) {
	if m == nil || m.Contract == "" || m.Contract == NextRelease {
		return 0, false
	}
	d, err := time.ParseDuration(m.Contract)
	return d, err == nil
}

// Path is a directory of the migrations (expand or contract) on the worker.
func (m *Migrations) Path(specDir, phase string) string {
	dir := m.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(specDir, dir)
	}
	return filepath.Join(dir, phase)
}

func (s *Service) defaultMigrations() {
	if m := s.Migrations; m != nil {
		if m.Tool == "" {
			m.Tool = ToolGoose
		}
		if m.Contract == "" {
			m.Contract = NextRelease
		}
		if m.Timeout == 0 {
			m.Timeout = Duration(10 * time.Minute)
		}
	}
}

func (s *Service) validateMigrations(add adder) {
	m := s.Migrations
	if m == nil {
		return
	}
	if m.DatabaseEnv == "" {
		add("migrations.databaseEnv", "required: the worker's variable that holds the database URL, like DB_URL")
	}
	if m.Contract != NextRelease {
		if d, err := time.ParseDuration(m.Contract); err != nil || d < 0 {
			add("migrations.contract", "%q is neither next-release nor a duration like 10m", m.Contract)
		}
	}
	switch m.Tool {
	case ToolGoose:
		if m.Dir == "" {
			add("migrations.dir", "required: the directory holding expand/ and contract/")
			return
		}
		for _, phase := range []string{"expand", "contract"} {
			if fi, err := os.Stat(m.Path(s.Dir, phase)); err != nil || !fi.IsDir() {
				add("migrations.dir", "%s has no %s/ directory", m.Dir, phase)
			}
		}
		for _, p := range NotAdditive(m.Path(s.Dir, "expand")) {
			add("migrations.dir", "%s", p)
		}
	case ToolCommand:
		if m.Command == nil || len(m.Command.Expand) == 0 || len(m.Command.Contract) == 0 {
			add("migrations.command", "required with tool command: expand and contract (down optional)")
		}
	case "migrate":
		add("migrations.tool", "migrate (golang-migrate) is not built in: use goose, or tool command running `migrate -path … up`")
	default:
		add("migrations.tool", "%q: use goose or command", m.Tool)
	}
}

// NotAdditive names, by file and line, each statement of an expand set's
// up migrations that removes or renames something: the old version still
// runs on the expanded schema, so those belong in contract/. It can only
// tell from the SQL text (DROP, RENAME, ALTER … TYPE), not from a function.
func NotAdditive(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.sql"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		up := true
		for i, line := range strings.Split(string(b), "\n") {
			t := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(t, "-- +GOOSE DOWN"):
				up = false
			case strings.HasPrefix(t, "-- +GOOSE UP"):
				up = true
			}
			if !up || strings.HasPrefix(t, "--") {
				continue
			}
			if what := removes(t); what != "" {
				out = append(out, fmt.Sprintf("expand/%s:%d: %s is not additive (the old version runs on the expanded schema): move it to contract/", filepath.Base(f), i+1, what))
			}
		}
	}
	return out
}

// removes names the destructive clause of one upper-cased SQL line.
func removes(t string) string {
	if i := strings.Index(t, "--"); i >= 0 {
		t = t[:i]
	}
	words := strings.Fields(strings.NewReplacer("(", " ", ")", " ", ",", " ", ";", " ").Replace(t))
	for i, w := range words {
		switch w {
		case "DROP", "RENAME", "TRUNCATE":
			if i+1 < len(words) && w != "TRUNCATE" {
				if words[i+1] == "DEFAULT" || words[i+1] == "NOT" {
					continue // DROP DEFAULT / DROP NOT NULL relax the schema
				}
				return w + " " + words[i+1]
			}
			return w
		case "TYPE":
			// ALTER [COLUMN] c [SET DATA] TYPE t changes a column under the
			// old version; CREATE TYPE and ALTER TYPE (an enum) do not
			if i > 0 && words[i-1] != "CREATE" && words[i-1] != "ALTER" && slices.Contains(words[max(0, i-4):i], "ALTER") {
				return "ALTER … TYPE"
			}
		}
	}
	return ""
}
