-- The root span of each run in a store segment: the run's own facts (steps contract:
-- workflow, outcome and tenant are written on the root span's row only).
SELECT
    {{segment}} AS segment,
    s.trace_id,
    s.span_id,
    s.start_time,
    s.duration_ms,
    s.workflow,
    s.outcome,
    s.tenant_id,
    s.user_id,
    s.session_id,
    s.service_name,
    s.service_version,
    s.environment
FROM {{step_source}} s
WHERE s.is_root AND {{where}}
