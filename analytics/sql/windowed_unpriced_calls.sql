-- Model calls that could not be priced, per time window and model (alert replays, see
-- stepscope.analytics.alert_queries). `model` and `unpriced` are those of
-- priced_steps.sql, so the counts equal step_kpis' unpriced_calls for each window alone;
-- a run belongs to every window its start falls in, as with Filters(since, until).
SELECT
    w.window_start,
    w.window_end,
    {{group_select}}
    count(*) AS unpriced_calls
FROM {{priced_steps}} ps
JOIN run_facts r ON r.trace_id = ps.trace_id
JOIN alert_windows w ON r.run_start >= w.window_start AND r.run_start < w.window_end
WHERE ps.unpriced AND {{where}}
GROUP BY w.window_start, w.window_end, {{group_by}}
ORDER BY w.window_start, w.window_end, {{group_by}}
