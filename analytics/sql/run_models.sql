-- The chat/completion models each run used (a run counts under each with `--by model`),
-- from the per-segment model_parts; a run split over segments is deduplicated.
SELECT mp.trace_id, mp.model
FROM model_parts mp
WHERE {{touched}} AND mp.trace_id NOT IN (SELECT trace_id FROM split_runs)
UNION ALL
SELECT DISTINCT mp.trace_id, mp.model
FROM model_parts mp
WHERE mp.trace_id IN (SELECT trace_id FROM split_runs)
