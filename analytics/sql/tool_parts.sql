-- Per store segment: its tool steps, narrowed to what the step-level KPIs read (calls,
-- errors, latency percentiles by tool). Percentiles need every duration, so these are
-- rows, not sums; but a few columns of a third of the steps, kept in the connection,
-- answer a per-tool question for any run filter without scanning the store.
SELECT
    CAST({{segment}} AS INTEGER) AS segment,
    s.trace_id,
    s.step_kind,
    s.tool_name,
    s.status_code,
    s.duration_ms,
    s.ttft_ms,
    s.provider,
    s.request_model,
    s.response_model,
    s.input_tokens,
    s.output_tokens,
    s.cached_input_tokens,
    s.reported_cost_usd
FROM {{step_source}} s
WHERE s.step_kind = 'tool' AND {{where}}
