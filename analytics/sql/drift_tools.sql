-- Tool calls per drift side, workflow and tool: the tool-call mix drift compares (the
-- tool steps are the run tables' tool_parts, of the store segments that hold the sides'
-- runs).
SELECT t.side, r.workflow, s.tool_name AS tool, count(*) AS calls
FROM {{drift_sides}} t
JOIN run_facts r ON r.trace_id = t.trace_id
JOIN tool_parts s ON s.trace_id = t.trace_id
WHERE s.tool_name IS NOT NULL AND {{segments}}
GROUP BY t.side, r.workflow, s.tool_name
