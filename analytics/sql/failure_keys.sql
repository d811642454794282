-- Failed steps grouped by failure key: error type, HTTP status, tool and message template.
--
-- A step failed when sql/step_failed.sql says so (error status, an error type or
-- exception, HTTP status >= 400); the failed steps are the per-segment failed_parts of
-- the run tables. Messages are normalised once per distinct message (the template
-- expression masks ids, numbers, URLs, ...), then joined back, so the cost grows with
-- the distinct messages, not the rows. Workflows and the other run filters (the
-- `Filters` condition on alias r) come from each trace's run_facts row.
--
-- One row per failure key seen in the window [$start_ns, $end_ns): counts, first and last
-- seen, affected workflows / models / service versions, counts per time bucket of
-- $bucket_ns, the $examples most recent traces, and the counts in the baseline window
-- [$baseline_start_ns, $baseline_end_ns) and after it that decide "new". The scan starts
-- at $scan_start_ns, the earlier of the window's and the baseline's starts.
WITH failed AS (
    SELECT trace_id, start_time_ns, error_type, http_status, tool_name, model,
           service_version, message
    FROM failed_parts
    WHERE start_time_ns >= $scan_start_ns
      AND start_time_ns < $end_ns
),
selected AS (
    -- The failures of the runs the filters select, with the runs' facts.
    SELECT f.*, r.workflow
    FROM failed AS f
    LEFT JOIN run_facts AS r ON r.trace_id = f.trace_id
    WHERE {{run_filter}}
),
run_model_names AS (
    -- The chat models of each run with a failure that is not itself a model call (a tool
    -- failure), one text per run: the models that failure affected (run_models).
    SELECT trace_id, string_agg(model, ',' ORDER BY model) AS models
    FROM run_models
    WHERE trace_id IN (SELECT trace_id FROM selected WHERE model IS NULL)
    GROUP BY trace_id
),
templates AS (
    -- (message, template) per distinct message: stepscope.analytics.error_templates.
    {{message_templates}}
),
keyed AS (
    SELECT
        coalesce(f.error_type, '') || chr(31) || coalesce(CAST(f.http_status AS VARCHAR), '')
            || chr(31) || coalesce(f.tool_name, '') || chr(31) || t.template AS failure_key,
        f.trace_id,
        f.start_time_ns,
        f.error_type,
        f.http_status,
        f.tool_name,
        coalesce(f.model, n.models) AS models,
        f.service_version,
        t.template,
        f.workflow
    FROM selected AS f
    JOIN templates AS t ON t.message = f.message
    LEFT JOIN run_model_names AS n ON n.trace_id = f.trace_id
),
in_window AS (
    SELECT * FROM keyed WHERE start_time_ns >= $start_ns
),
history AS (
    SELECT
        failure_key,
        sum(CASE WHEN start_time_ns >= $baseline_start_ns AND start_time_ns < $baseline_end_ns
                 THEN 1 ELSE 0 END) AS baseline_count
    FROM keyed
    GROUP BY failure_key
),
per_key AS (
    SELECT
        failure_key,
        any_value(error_type) AS error_type,
        any_value(http_status) AS http_status,
        any_value(tool_name) AS tool,
        any_value(template) AS template,
        count(*) AS count,
        sum(CASE WHEN start_time_ns >= $baseline_end_ns THEN 1 ELSE 0 END) AS after_baseline_count,
        min(start_time_ns) AS first_seen_ns,
        max(start_time_ns) AS last_seen_ns,
        array_agg(DISTINCT workflow) AS workflows,
        array_agg(DISTINCT models) AS models,
        array_agg(DISTINCT service_version) AS service_versions
    FROM in_window
    GROUP BY failure_key
),
per_bucket AS (
    SELECT failure_key, (start_time_ns // $bucket_ns) * $bucket_ns AS bucket_ns, count(*) AS n
    FROM in_window
    GROUP BY failure_key, (start_time_ns // $bucket_ns) * $bucket_ns
),
trend AS (
    SELECT failure_key,
           array_agg(bucket_ns ORDER BY bucket_ns) AS bucket_starts_ns,
           array_agg(n ORDER BY bucket_ns) AS bucket_counts
    FROM per_bucket
    GROUP BY failure_key
),
recent AS (
    SELECT failure_key, trace_id, start_time_ns,
           row_number() OVER (PARTITION BY failure_key
                              ORDER BY start_time_ns DESC, trace_id DESC) AS recency
    FROM in_window
),
examples AS (
    -- The traces of the most recent failures, newest first (ties by trace id), with their
    -- times; a few more than needed, as the caller keeps each trace once.
    SELECT failure_key,
           array_agg(trace_id ORDER BY recency) AS example_trace_ids,
           array_agg(start_time_ns ORDER BY recency) AS example_seen_ns
    FROM recent
    WHERE recency <= $examples * 4
    GROUP BY failure_key
)
SELECT
    k.failure_key,
    k.error_type,
    k.http_status,
    k.tool,
    k.template,
    k.count,
    h.baseline_count,
    k.after_baseline_count,
    k.first_seen_ns,
    k.last_seen_ns,
    k.workflows,
    k.models,
    k.service_versions,
    t.bucket_starts_ns,
    t.bucket_counts,
    e.example_trace_ids,
    e.example_seen_ns
FROM per_key AS k
JOIN history AS h ON h.failure_key = k.failure_key
JOIN trend AS t ON t.failure_key = k.failure_key
JOIN examples AS e ON e.failure_key = k.failure_key

ORDER BY k.failure_key
