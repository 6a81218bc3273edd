-- Transaction announcements waiting to be sent to peers (persisted so nothing accepted is
-- lost across a restart). source_peer is the peer it came from, which is not told again.
CREATE TABLE gossip_queue (
    register_id    TEXT NOT NULL,
    tx_id          TEXT NOT NULL,
    source_peer    TEXT,
    enqueued_at_ms BIGINT NOT NULL,
    PRIMARY KEY (register_id, tx_id)
);
CREATE INDEX gossip_queue_by_age ON gossip_queue (enqueued_at_ms);
CREATE INDEX transactions_by_received ON transactions (register_id, received_at_ms);
