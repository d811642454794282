-- Runs matching the filters and the explorer's conditions, newest or costliest first.
SELECT
    r.trace_id,
    r.run_start,
    r.workflow,
    r.outcome,
    r.latency_ms,
    r.steps,
    r.llm_calls,
    r.tool_calls,
    r.error_steps,
    r.input_tokens,
    r.output_tokens,
    r.cost_usd,
    r.unpriced_calls,
    r.reported_cost_usd,
    r.tenant_id,
    r.user_id,
    r.session_id,
    r.service_name,
    r.service_version,
    r.environment
FROM run_facts r
WHERE {{where}}
ORDER BY {{order_by}}
LIMIT $limit
