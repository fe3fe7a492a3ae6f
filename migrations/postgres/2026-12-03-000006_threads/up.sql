-- Threads: a message's replies are the messages whose parent it is. The newest reply's id
-- is kept on the parent, so a chat's threads list in order of their latest reply from one
-- index; replies page by (parent_id, id); each member has a read mark per thread.
ALTER TABLE messages ADD COLUMN last_reply_id BIGINT;
UPDATE messages SET last_reply_id = (
    SELECT MAX(replies.id) FROM messages AS replies WHERE replies.parent_id = messages.id
) WHERE id IN (SELECT parent_id FROM messages WHERE parent_id IS NOT NULL);
CREATE INDEX messages_threads_idx ON messages (chat_id, last_reply_id)
    WHERE last_reply_id IS NOT NULL;
DROP INDEX messages_parent_idx;
CREATE INDEX messages_parent_idx ON messages (parent_id, id) WHERE parent_id IS NOT NULL;

CREATE TABLE thread_reads (
    user_id               BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id            BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    last_read_message_id  BIGINT NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
