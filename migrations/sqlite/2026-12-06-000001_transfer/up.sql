-- Import and export: this database's identity, written into every export's header, and
-- which rows an import made from which exported rows, so importing a dump again (or a
-- later dump of the same database) adds only what is new.
CREATE TABLE database_identity (
    id TEXT PRIMARY KEY NOT NULL
);
INSERT INTO database_identity (id) VALUES (lower(hex(randomblob(16))));

CREATE TABLE imported_rows (
    origin    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    local_id  BIGINT NOT NULL,
    PRIMARY KEY (origin, kind, source_id)
);
