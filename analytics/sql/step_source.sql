-- The steps a query reads: the `steps` view of the store. Run tables are built per store
-- segment instead (segment_steps.sql), so that new segments update only their runs.
SELECT s.* FROM steps s
