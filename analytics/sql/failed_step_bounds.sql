-- First and last start time of the failed steps in [$start_ns, $end_ns), to place the
-- trend buckets when the caller gave no window (failed_parts holds the failed steps).
SELECT min(start_time_ns) AS first_ns, max(start_time_ns) AS last_ns
FROM failed_parts
WHERE start_time_ns >= $start_ns
  AND start_time_ns < $end_ns
