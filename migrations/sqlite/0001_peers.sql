-- Peers this node knows, with what it observed of them itself.
CREATE TABLE peers (
    peer_id              TEXT PRIMARY KEY,
    public_key           TEXT NOT NULL DEFAULT '',
    name                 TEXT NOT NULL DEFAULT '',
    address              TEXT NOT NULL,
    first_seen_ms        BIGINT NOT NULL,
    last_seen_ms         BIGINT NOT NULL,
    is_seed              BOOLEAN NOT NULL DEFAULT FALSE,
    failure_count        BIGINT NOT NULL DEFAULT 0,
    total_requests       BIGINT NOT NULL DEFAULT 0,
    successful_requests  BIGINT NOT NULL DEFAULT 0,
    success_rate         REAL,
    avg_latency_ms       REAL,
    min_latency_ms       REAL,
    max_latency_ms       REAL,
    penalty              REAL NOT NULL DEFAULT 0,
    penalty_updated_ms   BIGINT NOT NULL DEFAULT 0,
    last_penalty_reason  TEXT,
    last_penalty_at_ms   BIGINT
);

-- Bans by peer ID, IP address or CIDR subnet.
CREATE TABLE bans (
    target        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    source        TEXT NOT NULL,
    banned_at_ms  BIGINT NOT NULL,
    expires_at_ms BIGINT
);
