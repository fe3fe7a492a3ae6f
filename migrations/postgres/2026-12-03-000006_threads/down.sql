DROP TABLE thread_reads;
DROP INDEX messages_parent_idx;
CREATE INDEX messages_parent_idx ON messages (parent_id) WHERE parent_id IS NOT NULL;
DROP INDEX messages_threads_idx;
ALTER TABLE messages DROP COLUMN last_reply_id;
