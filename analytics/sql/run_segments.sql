-- The store segments holding steps of the selected runs (the runs part: a query of trace_id).
-- run_parts has a row for every segment and run with steps in it, so reading only these
-- segments reads every step of those runs.
SELECT DISTINCT p.segment
FROM run_parts p
WHERE p.trace_id IN (SELECT sel.trace_id FROM {{runs}} sel)
