DROP INDEX messages_chat_created_idx;
DROP TABLE chat_tags;
DROP INDEX chats_external_key_idx;
ALTER TABLE chats DROP COLUMN status;
ALTER TABLE chats DROP COLUMN external_key;
