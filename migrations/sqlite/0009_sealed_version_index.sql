-- Transactions by version, for serving dockets, holds only sealed rows. A pending row (version
-- NULL) no longer adds an entry to it when stored and moves that entry when sealed: one write
-- to the index per transaction instead of three.
DROP INDEX IF EXISTS transactions_by_version;
CREATE INDEX transactions_by_version ON transactions (register_id, version)
    WHERE version IS NOT NULL;
