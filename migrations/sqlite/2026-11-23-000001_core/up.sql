-- Core chat schema, the same history as migrations/postgres. INTEGER PRIMARY KEY AUTOINCREMENT
-- never reuses an id, so message ids stay monotonic for keyset order and watermarks.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    avatar_url    TEXT,
    is_bot        BOOLEAN NOT NULL DEFAULT FALSE,
    metadata      TEXT,
    last_seen_at  TIMESTAMP,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);

CREATE TABLE chats (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT NOT NULL,
    category          TEXT,
    name              TEXT,
    description       TEXT,
    avatar_url        TEXT,
    metadata          TEXT,
    created_by        BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- "<low user id>:<high user id>" for DIRECT chats: the unique index makes
    -- openDirectChat get-or-create safe under concurrent calls.
    direct_key        TEXT UNIQUE,
    last_message_id   BIGINT,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    last_activity_at  TIMESTAMP NOT NULL
);

CREATE TABLE members (
    chat_id                    BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id                    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                       TEXT NOT NULL,
    joined_at                  TIMESTAMP NOT NULL,
    last_read_message_id       BIGINT,
    last_read_at               TIMESTAMP,
    last_delivered_message_id  BIGINT,
    pinned                     BOOLEAN NOT NULL DEFAULT FALSE,
    muted                      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX members_user_idx ON members (user_id, chat_id);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id       BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    sender_id     BIGINT REFERENCES users (id) ON DELETE SET NULL,
    role          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    content       TEXT NOT NULL,
    data          TEXT,
    parent_id     BIGINT REFERENCES messages (id) ON DELETE SET NULL,
    client_id     TEXT,
    stream_state  TEXT,
    created_at    TIMESTAMP NOT NULL,
    edited_at     TIMESTAMP,
    retracted_at  TIMESTAMP,
    CONSTRAINT messages_client_id_unique UNIQUE (chat_id, sender_id, client_id)
);
-- Keyset pagination of a chat's messages, unread counts (id > watermark) and replies.
CREATE INDEX messages_chat_id_idx ON messages (chat_id, id);
CREATE INDEX messages_parent_idx ON messages (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX messages_sender_idx ON messages (sender_id);
