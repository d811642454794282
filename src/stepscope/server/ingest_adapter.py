"""The server's one door into the ingest pipeline: request payloads in, steps out.

`stepscope.ingest.pipeline` stores what it decodes; the server must decode *many*
spooled requests and store them with one append, so it calls the two stages itself:
`otlp_decode.decode_unit` (requests -> raw spans) and `normalise.normalise` (raw spans ->
steps, privacy applied). Everything convention-specific stays in `stepscope.ingest`.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from stepscope.config import Config
from stepscope.ingest.formats import Unit
from stepscope.ingest.normalise import normalise
from stepscope.ingest.otlp_decode import OtlpError, decode_unit

SOURCE_BATCH_MODULUS = 2**31  # source_batch is a 32-bit column


def steps_from_requests(con: duckdb.DuckDBPyConnection, payloads: list[bytes], config: Config,
                        source: str, first_batch: int = 1) -> tuple[pa.Table | None, list[str]]:
    """Decode and normalise many ExportTraceServiceRequest payloads together.

    Returns the steps (None when there are no spans) and one message per payload that
    could not be decoded or normalised. Payloads are processed as one unit; if that
    fails, each is processed alone so that one bad payload costs only itself.
    """
    records = [((first_batch + i) % SOURCE_BATCH_MODULUS, p) for i, p in enumerate(payloads)]
    try:
        raw, rejected = decode_unit(Unit(kind="proto", source=source, records=records,
                                         independent=True))
        problems = [f"request {batch}: {why}" for batch, why in rejected]
        if raw.num_rows == 0:
            return None, problems
        return normalise(con, raw, config), problems
    except _BATCH_ERRORS:
        pass
    tables, problems = [], []
    for batch, payload in records:
        try:
            raw, _ = decode_unit(Unit(kind="proto", source=source, records=[(batch, payload)]))
            if raw.num_rows:
                tables.append(normalise(con, raw, config))
        except _BATCH_ERRORS as exc:
            problems.append(f"request {batch}: {exc}")
    if not tables:
        return None, problems
    return (tables[0] if len(tables) == 1 else pa.concat_tables(tables)), problems


# What a bad payload can raise while decoding or normalising (not store or disk errors).
_BATCH_ERRORS = (OtlpError, duckdb.Error, pa.ArrowException, ValueError)
