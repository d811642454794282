-- One row per chat/completion call in the runs of either drift side.
--
-- model is the model asked for (else the one that answered); response_model is what the
-- provider says answered, whose changes under one requested model are silent updates.
-- The step source is the steps, or only the store segments holding the sides' runs
-- (run_tables.steps_of_runs).
SELECT
    t.side,
    r.workflow,
    coalesce(s.request_model, s.response_model) AS model,
    s.response_model,
    s.start_time_ns,
    s.duration_ms,
    CAST(s.input_tokens AS DOUBLE) AS input_tokens,
    CAST(s.output_tokens AS DOUBLE) AS output_tokens,
    s.finish_reason,
    coalesce({{step_failed}}, FALSE) AS failed
FROM {{drift_sides}} t
JOIN run_facts r ON r.trace_id = t.trace_id
JOIN {{step_source}} s ON s.trace_id = t.trace_id
WHERE s.step_kind = 'llm'
