package main

import (
	"database/sql"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// users is the schema-change demo: each version keeps a user's name in its
// own column (v1 "name", v2 "full_name"), so a rollout or a rollback is
// only safe when the schema serves both (expand) or the one running (contract).
type users struct {
	db     *sql.DB
	column string
}

func openUsers(url, column string) (*users, error) {
	if !regexp.MustCompile(`^[a-z_]+$`).MatchString(column) {
		return nil, fmt.Errorf("DEMO_DB_COLUMN %q is not a column name", column)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	return &users{db: db, column: column}, nil
}

// create: POST /users?name=N inserts a user and answers its id.
func (u *users) create(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var id int64
	if err := u.db.QueryRowContext(r.Context(), "INSERT INTO users ("+u.column+") VALUES ($1) RETURNING id", r.URL.Query().Get("name")).Scan(&id); err != nil {
		http.Error(w, "insert: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, id)
}

// read: GET /users/ID answers the user's name from this version's column;
// a name this version cannot see is a 500, as it would be for its users.
func (u *users) read(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/users/")
	var name sql.NullString
	err := u.db.QueryRowContext(r.Context(), "SELECT "+u.column+" FROM users WHERE id = $1", id).Scan(&name)
	switch {
	case err == sql.ErrNoRows:
		http.NotFound(w, r)
	case err != nil:
		http.Error(w, "select: "+err.Error(), http.StatusInternalServerError)
	case !name.Valid:
		http.Error(w, "user "+id+" has no "+u.column, http.StatusInternalServerError)
	default:
		fmt.Fprintln(w, name.String)
	}
}
