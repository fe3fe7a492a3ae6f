-- Edit history: each edit keeps the content it replaced, with when that content was
-- written (the message's creation or the previous edit) and when it was replaced.
-- Retracting the message deletes its history.
CREATE TABLE message_edits (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    content      TEXT NOT NULL,
    written_at   TIMESTAMP NOT NULL,
    replaced_at  TIMESTAMP NOT NULL
);
CREATE INDEX message_edits_message_idx ON message_edits (message_id, id);
