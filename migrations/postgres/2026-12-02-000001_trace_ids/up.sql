-- An assistant pipeline's trace id, so its trace can be followed through chatql.
ALTER TABLE messages ADD COLUMN trace_id TEXT;
