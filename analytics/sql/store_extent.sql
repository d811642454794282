-- How far the stored steps reach and how many runs they finish: the end of the newest
-- step (the demo's "now") and the number of root spans.
SELECT max(s.end_time_ns) AS newest_end_ns,
       sum(CASE WHEN s.is_root THEN 1 ELSE 0 END) AS runs
FROM steps s
