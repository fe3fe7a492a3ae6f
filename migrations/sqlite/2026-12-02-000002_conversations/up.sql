-- Conversation lifecycle and lookup: an application's own key per creator (unique while
-- set: NULLs are distinct in a unique index on both backends), a status, tags, and an
-- index for time ranges over a chat's messages.
ALTER TABLE chats ADD COLUMN external_key TEXT;
ALTER TABLE chats ADD COLUMN status TEXT NOT NULL DEFAULT 'ACTIVE';
CREATE UNIQUE INDEX chats_external_key_idx ON chats (created_by, external_key);

CREATE TABLE chat_tags (
    chat_id  BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (chat_id, tag)
);
CREATE INDEX chat_tags_tag_idx ON chat_tags (tag, chat_id);

CREATE INDEX messages_chat_created_idx ON messages (chat_id, created_at);
