-- Model calls per run, step kind and price row, labelled with model, provider and price
-- source: the source of every spend figure. A run held in one store segment is its
-- cost_parts as they are; a run split over segments (split_runs) has them summed.
WITH sums AS (
    SELECT
        cp.trace_id, cp.step_kind, cp.price_id, cp.calls, cp.errors, cp.input_tokens,
        cp.output_tokens, cp.cached_input_tokens, cp.cache_write_tokens, cp.cost_usd,
        cp.priced_calls, cp.unpriced_calls, cp.reported_cost_usd, cp.cost_usd_where_reported
    FROM cost_parts cp
    WHERE {{touched}} AND cp.trace_id NOT IN (SELECT trace_id FROM split_runs)
    UNION ALL
    SELECT
        cp.trace_id,
        cp.step_kind,
        cp.price_id,
        CAST(sum(cp.calls) AS BIGINT),
        CAST(sum(cp.errors) AS BIGINT),
        CAST(sum(cp.input_tokens) AS BIGINT),
        CAST(sum(cp.output_tokens) AS BIGINT),
        CAST(sum(cp.cached_input_tokens) AS BIGINT),
        CAST(sum(cp.cache_write_tokens) AS BIGINT),
        sum(cp.cost_usd),
        CAST(sum(cp.priced_calls) AS BIGINT),
        CAST(sum(cp.unpriced_calls) AS BIGINT),
        sum(cp.reported_cost_usd),
        sum(cp.cost_usd_where_reported)
    FROM cost_parts cp
    WHERE cp.trace_id IN (SELECT trace_id FROM split_runs)
    GROUP BY cp.trace_id, cp.step_kind, cp.price_id
)
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
FROM sums m
LEFT JOIN step_prices p ON p.price_id = m.price_id
