-- The steps of one store segment file.
SELECT s.* FROM read_parquet({{file}}) s
