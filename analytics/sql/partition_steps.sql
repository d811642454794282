-- The steps of day partitions of a ClickHouse store (the unit its run tables are
-- built from, as a segment file is in the embedded store).
SELECT s.* FROM steps s WHERE CAST(s.start_time AS DATE) IN ({{days}})
