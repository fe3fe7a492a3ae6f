-- Tokens carry the generation they were issued in; bumping it revokes every earlier token.
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

-- Usernames become unique regardless of case ("Alice" beside "alice" was allowed). Usernames
-- are ASCII, so NOCASE folds them exactly (and needs no function, unlike lower(), which
-- chatql replaces per connection). Later duplicates get their id appended first.
UPDATE users SET username = username || '-' || CAST(id AS TEXT)
WHERE id NOT IN (SELECT MIN(id) FROM users GROUP BY username COLLATE NOCASE);
CREATE UNIQUE INDEX users_username_ci ON users (username COLLATE NOCASE);
