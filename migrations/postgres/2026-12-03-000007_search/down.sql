ALTER TABLE messages DROP COLUMN search_vector;
DROP TABLE search_settings;
