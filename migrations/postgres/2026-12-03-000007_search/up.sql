-- Full-text search: each message's words as a tsvector, kept by PostgreSQL itself (a
-- generated column, so no write path can forget it), with a GIN index for `@@` lookups.
-- A retracted message has no vector, so it never matches. The text search configuration
-- is baked into the column (a generated column's expression must be immutable); the one in
-- use is recorded here, and the server rebuilds the column when its configured one differs
-- (db::search::use_text_search_config).
CREATE TABLE search_settings (
    singleton           BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    text_search_config  TEXT NOT NULL
);
INSERT INTO search_settings (text_search_config) VALUES ('english');

ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    CASE WHEN retracted_at IS NULL THEN to_tsvector('english'::regconfig, content) END
) STORED;
CREATE INDEX messages_search_idx ON messages USING GIN (search_vector);
