-- The chat/completion models each run used (a run counts under each with `--by model`).
SELECT DISTINCT c.trace_id, c.model
FROM run_model_costs c
WHERE c.step_kind = 'llm' AND c.model IS NOT NULL AND {{touched}}
