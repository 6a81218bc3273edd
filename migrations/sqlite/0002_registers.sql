-- Registers this node holds: as origin, full replica or forward-only replica. The head
-- (height, head_hash, latest_version) is updated in the same transaction as the dockets it
-- covers, so it doubles as the replication checkpoint.
CREATE TABLE registers (
    register_id     TEXT PRIMARY KEY,
    is_public       BOOLEAN NOT NULL,
    role            TEXT NOT NULL,
    origin_key      TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    height          BIGINT NOT NULL,
    head_hash       TEXT NOT NULL,
    latest_version  BIGINT NOT NULL,
    base_height     BIGINT NOT NULL
);

CREATE TABLE dockets (
    register_id    TEXT NOT NULL,
    number         BIGINT NOT NULL,
    previous_hash  TEXT NOT NULL,
    merkle_root    TEXT NOT NULL,
    tx_count       BIGINT NOT NULL,
    first_version  BIGINT NOT NULL,
    sealed_at_ms   BIGINT NOT NULL,
    hash           TEXT NOT NULL,
    signature      TEXT NOT NULL,
    PRIMARY KEY (register_id, number)
);

-- Transactions; version and docket_number stay NULL while pending (not yet sealed).
CREATE TABLE transactions (
    register_id     TEXT NOT NULL,
    tx_id           TEXT NOT NULL,
    payload         BLOB NOT NULL,
    received_at_ms  BIGINT NOT NULL,
    version         BIGINT,
    docket_number   BIGINT,
    PRIMARY KEY (register_id, tx_id)
);
CREATE INDEX transactions_by_version ON transactions (register_id, version);

CREATE TABLE subscriptions (
    register_id      TEXT PRIMARY KEY,
    mode             TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    last_sync_at_ms  BIGINT,
    error            TEXT,
    failures         BIGINT NOT NULL DEFAULT 0
);
