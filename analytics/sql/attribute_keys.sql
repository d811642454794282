-- One row per span attribute key in the store: how many steps carry it, an example
-- value (the greatest), and the instrumentation scope that sends it most (ties: the greatest name).
-- With {{key_filter}} set, only the keys no mapping reads (stepscope.ingest.unmapped).
WITH pairs AS (
    SELECT unnest(map_keys(s.attributes)) AS key, s.attributes AS attributes,
           s.scope_name AS scope_name
    FROM steps s
),
per_scope AS (
    SELECT p.key, p.scope_name, count(*) AS spans,
           max(p.attributes[p.key]) AS example
    FROM pairs p
    WHERE {{key_filter}}
    GROUP BY p.key, p.scope_name
)
SELECT ps.key,
       sum(ps.spans) AS spans,
       left(max(ps.example), {{example_chars}}) AS example,
       arg_max(ps.scope_name, (ps.spans, coalesce(ps.scope_name, ''))) AS scope
FROM per_scope ps
GROUP BY ps.key
ORDER BY spans DESC, ps.key
