-- Pinned messages: at most one pin per message, listed per chat newest pin first.
CREATE TABLE pins (
    message_id  BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    chat_id     BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    pinned_by   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    pinned_at   TIMESTAMP NOT NULL
);
CREATE INDEX pins_chat_idx ON pins (chat_id, pinned_at);
