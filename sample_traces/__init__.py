"""A fictional company's agent traces, with planted incidents and their ground truth.

`generate()` writes a deterministic history (OTLP protobuf and OTLP/JSON Lines files
plus `ground_truth.json`); the bundled sample is that history with the default
arguments, shipped inside the package (see `bundled_sample_dir()`). `README.md` in this
directory describes the company, the incidents and the ground-truth schema.
"""

from __future__ import annotations

from pathlib import Path

from .generator import DEFAULT_DAYS, DEFAULT_END, DEFAULT_SEED, GenerationResult, generate

__all__ = ["DEFAULT_DAYS", "DEFAULT_END", "DEFAULT_SEED", "GenerationResult",
           "bundled_sample_dir", "bundled_traces_dir", "generate"]


def bundled_sample_dir() -> Path:
    """The bundled sample: `ground_truth.json` and the OTLP files under `traces/`.

    Ingest `bundled_traces_dir()` rather than this directory: ground_truth.json is not
    OTLP, and ingest rightly rejects it.
    """
    return Path(__file__).resolve().parent / "data"


def bundled_traces_dir() -> Path:
    """The bundled sample's OTLP files (one directory per service)."""
    return bundled_sample_dir() / "traces"
