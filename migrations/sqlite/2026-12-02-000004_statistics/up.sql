-- Statistics over every chat (the admin key's totals) read a time range of all messages;
-- a chat's and a user's statistics use messages_chat_created_idx.
CREATE INDEX messages_created_idx ON messages (created_at);
-- SQLite's planner weighs indexes by sqlite_stat1. A database analysed before
-- messages_chat_created_idx existed has statistics for messages_chat_id_idx only, and then
-- `WHERE chat_id = ? ORDER BY id DESC LIMIT n` (every page of messages) takes the unanalysed
-- index and sorts the whole chat: half the throughput, measured. Analysing the table gives
-- both indexes their statistics, and the planner the (chat_id, id) index for pages again.
ANALYZE messages;
