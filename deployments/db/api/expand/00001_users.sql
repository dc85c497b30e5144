-- +goose Up
CREATE TABLE users (id bigserial PRIMARY KEY, name text);

-- +goose Down
DROP TABLE users;
