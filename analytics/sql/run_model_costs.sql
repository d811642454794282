-- Model calls per run, step kind and price row, merged over segments and labelled with
-- model, provider and price source: the source of every spend figure.
SELECT
    m.trace_id,
    m.step_kind,
    p.model_label AS model,
    p.provider_label AS provider,
    p.price_source,
    m.price_id,
    m.calls,
    m.errors,
    m.input_tokens,
    m.output_tokens,
    m.cached_input_tokens,
    m.cache_write_tokens,
    m.cost_usd,
    m.priced_calls,
    m.unpriced_calls,
    m.reported_cost_usd,
    m.cost_usd_where_reported
FROM (
    SELECT
        cp.trace_id,
        cp.step_kind,
        cp.price_id,
        CAST(sum(cp.calls) AS BIGINT) AS calls,
        CAST(sum(cp.errors) AS BIGINT) AS errors,
        CAST(sum(cp.input_tokens) AS BIGINT) AS input_tokens,
        CAST(sum(cp.output_tokens) AS BIGINT) AS output_tokens,
        CAST(sum(cp.cached_input_tokens) AS BIGINT) AS cached_input_tokens,
        CAST(sum(cp.cache_write_tokens) AS BIGINT) AS cache_write_tokens,
        sum(cp.cost_usd) AS cost_usd,
        CAST(sum(cp.priced_calls) AS BIGINT) AS priced_calls,
        CAST(sum(cp.unpriced_calls) AS BIGINT) AS unpriced_calls,
        sum(cp.reported_cost_usd) AS reported_cost_usd,
        sum(cp.cost_usd_where_reported) AS cost_usd_where_reported
    FROM cost_parts cp
    WHERE {{touched}}
    GROUP BY cp.trace_id, cp.step_kind, cp.price_id
) m
LEFT JOIN step_prices p ON p.price_id = m.price_id
