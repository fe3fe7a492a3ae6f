-- Who a message mentions. Keyed by the mentioned user and chat first, so a member's
-- unread mentions are one range of the primary key above their read watermark.
CREATE TABLE mentions (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    chat_id     BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    message_id  BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, chat_id, message_id)
);
CREATE INDEX mentions_message_idx ON mentions (message_id);
