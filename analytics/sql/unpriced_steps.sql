-- Steps with the columns priced_steps.sql adds, left empty: for queries over steps that
-- are never priced (tool calls), which so skip the price join. Keep the columns in step
-- with priced_steps.sql.
SELECT
    s.*,
    coalesce(s.request_model, s.response_model) AS model,
    CAST(NULL AS BIGINT) AS price_id,
    CAST(NULL AS VARCHAR) AS price_source,
    CAST(NULL AS VARCHAR) AS priced_provider,
    FALSE AS unpriced,
    CAST(NULL AS DOUBLE) AS cost_usd
FROM {{step_source}} s
