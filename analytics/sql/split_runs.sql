-- The runs (of those being merged) whose steps are in more than one store segment: only
-- they need their per-segment parts merged; every other run's part is its row.
SELECT rp.trace_id
FROM run_parts rp
WHERE {{touched}}
GROUP BY rp.trace_id
HAVING count(*) > 1
