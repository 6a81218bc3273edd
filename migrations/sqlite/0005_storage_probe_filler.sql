-- Filler a health check writes into the probe row (then empties again): a probe as large as
-- the write that failed tells whether storage takes writes of that size again.
ALTER TABLE storage_probe ADD COLUMN filler BLOB;
