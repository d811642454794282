"""The ClickHouse backend: the same steps table and analytics beyond one machine.

`--db clickhouse://user@host:8123/database` (or `chdb:///dir`, the engine in-process)
puts the normalised steps in ClickHouse instead of the embedded Parquet store. Needs the
optional extra: `pip install 'stepscope[clickhouse]'`. See docs/clickhouse.md.
"""
