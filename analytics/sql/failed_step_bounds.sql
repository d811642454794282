-- First and last start time of the failed steps in [$start_ns, $end_ns), to place the
-- trend buckets when the caller gave no window (sql/step_failed.sql says what failed is).
SELECT min(start_time_ns) AS first_ns, max(start_time_ns) AS last_ns
FROM steps
WHERE start_time_ns >= $start_ns
  AND start_time_ns < $end_ns
  AND {{step_failed}}
