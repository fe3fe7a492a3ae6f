ALTER TABLE messages DROP COLUMN session_id;
ALTER TABLE chats DROP COLUMN active_session_id;
DROP TABLE chat_sessions;
