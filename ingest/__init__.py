"""OTLP trace files and requests in, normalised steps out (into the store).

Pipeline: `formats` finds the OTLP requests in a file (whatever its encoding or
compression) -> `otlp_decode` turns requests into a columnar *raw spans* table
(`raw_schema`) -> `normalise` maps every convention onto the steps schema in DuckDB SQL,
applying the privacy policy -> `stepscope.store.Store.append_steps` stores it once.
"""
