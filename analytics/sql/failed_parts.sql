-- Per store segment: its failed steps (sql/step_failed.sql), narrowed to what failure
-- clusters read. Failures are a few percent of the steps, so clustering any window for
-- any run filter reads these instead of the store; the runs' facts come from run_facts.
SELECT
    CAST({{segment}} AS INTEGER) AS segment,
    s.trace_id,
    s.start_time_ns,
    s.error_type,
    s.http_status,
    s.tool_name,
    coalesce(s.request_model, s.response_model) AS model,
    s.service_version,
    coalesce(nullif(s.error_message, ''), nullif(s.status_message, ''), '') AS message
FROM {{step_source}} s
WHERE {{step_failed}} AND {{where}}
