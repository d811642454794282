-- How many of the run parts belong to the given store segments, out of all of them:
-- when most of the store went away (a compaction, a retention run), rebuilding the run
-- tables is cheaper than patching them.
SELECT sum(CASE WHEN rp.segment IN ({{segments}}) THEN 1 ELSE 0 END) AS gone, count(*) AS total
FROM run_parts rp
