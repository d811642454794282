-- Every step with the price in force for it and its cost, computed at query time.
--
-- Only model calls (llm and embedding steps) are priced. The price row is the one of the
-- step's provider and models whose validity period, time-of-day window and input-token
-- tier hold for the call (stepscope.analytics.pricing builds `step_prices` without
-- overlaps or gaps, so exactly one row matches; a row without a source means no price). Input tokens include cached input (steps
-- contract): the uncached rest is charged at the input rate, cached input at the
-- cache-read rate and cache writes at the cache-write rate, each falling back to the
-- input rate where a model has none, as the price library does; reasoning tokens (part
-- of output) at a reasoning rate where one exists.
--
-- cost_usd is NULL, never 0, for a call that cannot be priced; `unpriced` marks a model
-- call whose model has no price, or that succeeded without reporting token counts (a
-- stream without usage): its cost is unknown. A failed call without tokens costs nothing.
SELECT
    s.*,
    coalesce(s.request_model, s.response_model) AS model,
    p.price_id,
    p.price_source,
    p.priced_provider,
    CASE
        WHEN s.step_kind NOT IN ('llm', 'embedding') THEN FALSE
        WHEN s.input_tokens IS NULL AND s.output_tokens IS NULL THEN s.status_code <> 'error'
        ELSE p.price_source IS NULL
    END AS unpriced,
    CASE
        WHEN p.price_source IS NOT NULL
             AND (s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL) THEN
            ( (coalesce(s.input_tokens, 0) - coalesce(s.cached_input_tokens, 0)
                   - coalesce(s.cache_write_tokens, 0)) * coalesce(p.input_per_mtok, 0)
              + coalesce(s.cached_input_tokens, 0)
                   * coalesce(p.cache_read_per_mtok, p.input_per_mtok, 0)
              + coalesce(s.cache_write_tokens, 0)
                   * coalesce(p.cache_write_per_mtok, p.input_per_mtok, 0)
              + (coalesce(s.output_tokens, 0) - coalesce(s.reasoning_tokens, 0))
                   * coalesce(p.output_per_mtok, 0)
              + coalesce(s.reasoning_tokens, 0)
                   * coalesce(p.reasoning_per_mtok, p.output_per_mtok, 0)
            ) / 1000000.0 + coalesce(p.per_request_usd, 0)
    END AS cost_usd
FROM {{step_source}} s
LEFT JOIN step_prices p
    ON s.step_kind IN ('llm', 'embedding')
    AND p.provider = coalesce(s.provider, '')
    AND p.request_model = coalesce(s.request_model, '')
    AND p.response_model = coalesce(s.response_model, '')
    AND s.start_time_ns >= p.valid_from_ns
    AND s.start_time_ns < p.valid_to_ns
    AND s.start_time_ns % 86400000000000 >= p.day_from_ns
    AND s.start_time_ns % 86400000000000 < p.day_to_ns
    AND coalesce(s.input_tokens, 0) > p.input_above
    AND coalesce(s.input_tokens, 0) <= p.input_upto
