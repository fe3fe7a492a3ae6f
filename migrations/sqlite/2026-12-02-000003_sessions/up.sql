-- Sessions: a chat's conversation split where it went quiet (or where a member started a
-- new one). The chat points at its open session; each message names the session it was
-- sent in. A session's last activity is its last message, so only its end is stored.
CREATE TABLE chat_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    started_at  TIMESTAMP NOT NULL,
    ended_at    TIMESTAMP
);
CREATE INDEX chat_sessions_chat_idx ON chat_sessions (chat_id, id);
ALTER TABLE chats ADD COLUMN active_session_id BIGINT;
ALTER TABLE messages ADD COLUMN session_id BIGINT;
