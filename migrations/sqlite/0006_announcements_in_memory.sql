-- Announcements wait in memory now: a restart re-announces the pending transactions, which
-- are the durable record of what is still to spread (issue 18: one write per transaction).
DROP TABLE IF EXISTS gossip_queue;
