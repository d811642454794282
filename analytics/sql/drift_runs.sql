-- One row per run of either drift side: the run-level values drift compares.
--
-- cost_usd is the run's cost only when every model call of the run was priced (a run
-- with an unpriced call has an unknown cost and is left out of cost drift); had_error
-- says whether any step of the run failed.
SELECT
    t.side,
    r.trace_id,
    r.workflow,
    r.service_name,
    r.service_version,
    r.run_start,
    r.latency_ms,
    CAST(r.steps AS DOUBLE) AS steps,
    CASE WHEN r.unpriced_calls = 0 THEN r.cost_usd END AS cost_usd,
    r.error_steps > 0 AS had_error
FROM {{drift_sides}} t
JOIN run_facts r ON r.trace_id = t.trace_id
