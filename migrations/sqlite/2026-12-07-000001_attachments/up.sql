-- Attachments: the stored bytes once per content (media_blobs, keyed by SHA-256), and
-- each upload of them into a chat (attachments), pending until a message carries it.
CREATE TABLE media_blobs (
    sha256      TEXT PRIMARY KEY NOT NULL,
    size        BIGINT NOT NULL,
    mime_type   TEXT NOT NULL,
    -- Renewed by every upload of these bytes: the sweeper keeps a blob touched in its
    -- grace period even when nothing references it yet (the upload's row follows).
    touched_at  TIMESTAMP NOT NULL
);
CREATE INDEX media_blobs_touched_idx ON media_blobs (touched_at);

CREATE TABLE attachments (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id           BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    uploader_id       BIGINT REFERENCES users (id) ON DELETE SET NULL,
    message_id        BIGINT REFERENCES messages (id) ON DELETE CASCADE,
    position          INTEGER NOT NULL DEFAULT 0,
    name              TEXT NOT NULL,
    mime_type         TEXT NOT NULL,
    size              BIGINT NOT NULL,
    -- Null while a two-step upload waits for its bytes.
    sha256            TEXT REFERENCES media_blobs (sha256),
    width             INTEGER,
    height            INTEGER,
    thumbnail_sha256  TEXT REFERENCES media_blobs (sha256),
    -- SHA-256 of a two-step upload's ticket (the PUT URL's secret), until the bytes came.
    ticket_hash       TEXT UNIQUE,
    expires_at        TIMESTAMP,
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX attachments_message_idx ON attachments (message_id, position) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_pending_idx ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_sha256_idx ON attachments (sha256);
CREATE INDEX attachments_thumbnail_idx ON attachments (thumbnail_sha256) WHERE thumbnail_sha256 IS NOT NULL;
