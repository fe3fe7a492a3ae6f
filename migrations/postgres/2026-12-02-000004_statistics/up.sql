-- Statistics over every chat (the admin key's totals) read a time range of all messages;
-- a chat's and a user's statistics use messages_chat_created_idx.
CREATE INDEX messages_created_idx ON messages (created_at);
