-- The steps of some partitions of a ClickHouse store, the unit its run tables are built
-- from (as a segment file is in the embedded store): `period` is the day or the hour of
-- a step's start, `starts` the partitions' days or hours.
SELECT s.* FROM steps s WHERE {{period}} IN ({{starts}})
