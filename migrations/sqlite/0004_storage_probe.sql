-- One row, rewritten by health checks to find out whether storage still accepts writes
-- (a full or read-only disk still answers reads).
CREATE TABLE storage_probe (
    id INTEGER PRIMARY KEY,
    checked_at_ms INTEGER NOT NULL
);
