// Package pgtest runs a real PostgreSQL for tests: initdb in a temporary
// directory, on a free port of 127.0.0.1, stopped when the test ends.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Start runs PostgreSQL and returns its URL (user app, database postgres,
// trust authentication). The test skips, saying why, where it is not installed.
func Start(t testing.TB) string {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		t.Skip("PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it")
	}
	bin := filepath.Dir(initdbs[len(initdbs)-1])
	dir, err := os.MkdirTemp("", "switchyard-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// PostgreSQL refuses to run as root: its directory must be the postgres user's
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	data := filepath.Join(dir, "pg")
	as := func(tool string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, tool), args...)
		if os.Geteuid() == 0 {
			cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, tool)}, args...)...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, out)
		}
	}
	as("initdb", "-D", data, "-U", "app", "--auth=trust", "--no-sync")
	as("pg_ctl", "-D", data, "-l", filepath.Join(dir, "pg.log"), "-w", "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", port, data), "start")
	t.Cleanup(func() { as("pg_ctl", "-D", data, "-w", "stop", "-m", "fast") })
	return fmt.Sprintf("postgres://app@127.0.0.1:%d/postgres?sslmode=disable", port)
}
