-- The runs on the two sides of a drift comparison, tagged 'baseline' or 'current'.
--
-- Each side is a condition on run_facts r (a time window on the run's start, a service
-- version, or both) built by stepscope.analytics.filters, as is the run filter shared by
-- both sides. Finished runs only: a running one has no latency or outcome yet.
SELECT 'baseline' AS side, r.trace_id
FROM run_facts r
WHERE r.finished AND {{baseline_condition}} AND {{run_filter}}
UNION ALL
SELECT 'current' AS side, r.trace_id
FROM run_facts r
WHERE r.finished AND {{current_condition}} AND {{run_filter}}
