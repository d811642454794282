-- Per store segment and run: the chat/completion models it used (from the segment's
-- cost_parts and the labels of the price table).
SELECT DISTINCT
    CAST({{segment}} AS INTEGER) AS segment,
    cp.trace_id,
    p.model_label AS model
FROM cost_parts cp
JOIN step_prices p ON p.price_id = cp.price_id
WHERE cp.segment = {{segment}} AND cp.step_kind = 'llm' AND p.model_label IS NOT NULL
    AND {{where}}
