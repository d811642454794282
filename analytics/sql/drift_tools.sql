-- Tool calls per drift side, workflow and tool: the tool-call mix drift compares.
SELECT t.side, r.workflow, s.tool_name AS tool, count(*) AS calls
FROM {{drift_sides}} t
JOIN run_facts r ON r.trace_id = t.trace_id
JOIN steps s ON s.trace_id = t.trace_id
WHERE s.step_kind = 'tool' AND s.tool_name IS NOT NULL
GROUP BY t.side, r.workflow, s.tool_name
