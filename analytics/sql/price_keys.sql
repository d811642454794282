-- The distinct (provider, requested model, responding model) of the model calls: with the
-- call's time and input size, everything that decides its price. Prices are looked up
-- once per row of this query (stepscope.analytics.pricing), never per span.
SELECT
    coalesce(s.provider, '') AS provider,
    coalesce(s.request_model, '') AS request_model,
    coalesce(s.response_model, '') AS response_model,
    count(*) AS calls,
    min(s.start_time) AS first_seen,
    max(s.start_time) AS last_seen
FROM {{step_source}} s
WHERE s.step_kind IN ('llm', 'embedding')
GROUP BY coalesce(s.provider, ''), coalesce(s.request_model, ''), coalesce(s.response_model, '')
ORDER BY calls DESC
