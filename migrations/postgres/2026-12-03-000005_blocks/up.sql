-- Who blocked whom. Keyed by the blocker first (their list, and "did the viewer block
-- this sender"); the second index answers "who blocked this user".
CREATE TABLE blocks (
    blocker_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);
