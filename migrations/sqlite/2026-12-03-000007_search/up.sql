-- Full-text search: an FTS5 index over the messages table (external content, so the text
-- is stored once), kept in step by triggers on every insert, update and delete, including
-- the deletes of a chat's cascade. Retracted messages are taken out of the index.
--
-- `chat_id` is indexed as a token too: a search inside one chat, or inside a user's chats,
-- is then an AND of posting lists that FTS5 intersects by seeking, instead of every match
-- of a common word in the database checked against the chat one by one.
--
-- The tokenizer splits on Unicode word boundaries, folds case and diacritics, and stems
-- English words (porter), which matches PostgreSQL's default `english` configuration.
CREATE VIRTUAL TABLE messages_search USING fts5(
    content,
    chat_id,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO messages_search (rowid, content, chat_id)
    SELECT id, content, chat_id FROM messages WHERE retracted_at IS NULL;

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
WHEN new.retracted_at IS NULL
BEGIN
    INSERT INTO messages_search (rowid, content, chat_id)
        VALUES (new.id, new.content, new.chat_id);
END;

-- An external-content index forgets a row only when told the exact values it indexed.
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages
WHEN old.retracted_at IS NULL
BEGIN
    INSERT INTO messages_search (messages_search, rowid, content, chat_id)
        VALUES ('delete', old.id, old.content, old.chat_id);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF content, retracted_at ON messages
BEGIN
    INSERT INTO messages_search (messages_search, rowid, content, chat_id)
        SELECT 'delete', old.id, old.content, old.chat_id WHERE old.retracted_at IS NULL;
    INSERT INTO messages_search (rowid, content, chat_id)
        SELECT new.id, new.content, new.chat_id WHERE new.retracted_at IS NULL;
END;
