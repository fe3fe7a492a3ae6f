-- Reactions: one row per user, message and emoji (the emoji in its fully-qualified form,
-- so "❤" and "❤️" are one reaction). Adding an existing one changes nothing.
CREATE TABLE reactions (
    message_id  BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji       TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);
-- A message's groups (count per emoji) and each group's first users, in reaction order.
CREATE INDEX reactions_group_idx ON reactions (message_id, emoji, created_at);
-- Deleting a user's account removes their reactions.
CREATE INDEX reactions_user_idx ON reactions (user_id);
