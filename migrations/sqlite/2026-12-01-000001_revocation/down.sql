DROP INDEX users_username_ci;
ALTER TABLE users DROP COLUMN token_generation;
