DROP TABLE imported_rows;
DROP TABLE database_identity;
