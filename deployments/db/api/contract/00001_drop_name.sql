-- Only v1 needed name. This runs once v1 is nowhere (the contract of v2:
-- by default when v3 ships). The Down section is the way back to v1: with
-- it, `switchyard deploy api --version v1` runs it first; without it, the
-- deploy is refused (or forced with --force).
-- +goose Up
DROP TRIGGER users_sync_names ON users;
ALTER TABLE users DROP COLUMN name;

-- +goose Down
ALTER TABLE users ADD COLUMN name text;
UPDATE users SET name = full_name;
CREATE TRIGGER users_sync_names BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_sync_names();
