-- The runs with parts in the given store segments (by their ids in the part tables):
-- the runs whose merged rows must be computed again when those segments come or go.
SELECT DISTINCT rp.trace_id
FROM run_parts rp
WHERE rp.segment IN ({{segments}})
