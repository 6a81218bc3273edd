-- The pending transactions in arrival order, for sealing and re-announcing. Only pending rows
-- are in it, so finding the oldest ones no longer walks past every sealed row of the register
-- (nor sorts the many rows one commit gives the same arrival time).
CREATE INDEX transactions_pending ON transactions (register_id, received_at_ms, tx_id)
    WHERE version IS NULL;
DROP INDEX IF EXISTS transactions_by_received;
