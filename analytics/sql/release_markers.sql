-- When each service version was first (and last) seen, per service and workflow, by the
-- start of its runs: the markers drawn on time series.
SELECT
    r.service_name,
    r.workflow,
    r.service_version,
    min(r.run_start) AS first_seen,
    max(r.run_start) AS last_seen,
    count(*) AS runs
FROM run_facts r
WHERE r.service_version IS NOT NULL AND {{where}}
GROUP BY r.service_name, r.workflow, r.service_version
ORDER BY first_seen, r.service_name, r.workflow
