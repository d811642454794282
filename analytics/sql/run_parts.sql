-- Per store segment and run (trace): the run's step counts, as aggregates that merge
-- (min, max, sum) over segments, so that a new segment updates only the runs it touches.
-- Its root span's own facts are in root_rows.sql.
SELECT
    {{segment}} AS segment,
    s.trace_id,
    max(CASE WHEN s.is_root THEN 1 ELSE 0 END) AS has_root,
    min(s.start_time) AS first_start,
    min(s.user_id) AS any_user_id,
    count(*) AS steps,
    CAST(sum(CASE WHEN s.step_kind = 'tool' THEN 1 ELSE 0 END) AS BIGINT) AS tool_calls,
    CAST(sum(CASE WHEN s.step_kind = 'tool' AND s.status_code = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS tool_errors,
    CAST(sum(CASE WHEN s.status_code = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS error_steps
FROM {{step_source}} s
WHERE {{where}}
GROUP BY s.trace_id
