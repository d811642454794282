-- Failed steps of the selected runs grouped by error type and message (and the tool or
-- model that failed): the raw material of "top failure reasons". Root spans are left
-- out: a failed run's root mostly repeats the failure of one of its steps.
SELECT
    coalesce(s.error_type, CAST(s.http_status AS VARCHAR), 'error') AS error_type,
    substr(coalesce(s.error_message, s.status_message, ''), 1, 200) AS message,
    s.step_kind,
    coalesce(s.tool_name, s.request_model, s.response_model, s.name) AS component,
    count(*) AS failures,
    count(DISTINCT s.trace_id) AS runs,
    string_agg(DISTINCT r.workflow, ', ' ORDER BY r.workflow) AS workflows,
    min(s.start_time) AS first_seen,
    max(s.start_time) AS last_seen
FROM steps s
JOIN run_facts r ON r.trace_id = s.trace_id
WHERE s.status_code = 'error' AND NOT s.is_root AND {{where}}
GROUP BY
    coalesce(s.error_type, CAST(s.http_status AS VARCHAR), 'error'),
    substr(coalesce(s.error_message, s.status_message, ''), 1, 200),
    s.step_kind,
    coalesce(s.tool_name, s.request_model, s.response_model, s.name)
ORDER BY failures DESC, error_type, message
LIMIT $limit
