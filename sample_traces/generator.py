"""Generate the sample: simulate day by day, write OTLP files, measure the ground truth.

Deterministic by construction: every (workflow, day) pair draws from its own numpy
Generator seeded from `SeedSequence([seed, workflow number, day number])`, iteration
orders are fixed tuples, nothing reads the clock, and compression streams carry no
timestamps. Memory stays bounded by one day of spans: each day's spans are written
(as the exporters would have sent them by midnight) before the next day is simulated.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import company, conventions, ground_truth, workflows
from .engine import NS_PER_DAY, NS_PER_S, make_runs
from .incidents import IncidentPlan, service_version
from .otlp_writer import TRACES_SUBDIR, TraceFileWriter, WrittenFile

DEFAULT_SEED = 42
DEFAULT_DAYS = 14
DEFAULT_END = datetime(2026, 11, 16, tzinfo=UTC)
#: Mean spans per run of each workflow (measured on the sample); `spans=` uses them to
#: choose the volume scale for the calendar days asked for.
SPANS_PER_RUN = {"support_triage": 5.6, "kb_answer": 5.6, "refund_request": 7.0,
                 "account_config": 5.5, "weekly_report": 10.7}
#: The bundled sample squeezes hardest; generated benchmark sets favour speed.
SAMPLE_COMPRESSION_LEVEL = 15
FAST_COMPRESSION_LEVEL = 3


@dataclass
class GenerationResult:
    out_dir: Path
    files: list[WrittenFile]
    spans: int
    runs: int
    seconds: float
    ground_truth_path: Path | None

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "files": len(self.files), "spans": self.spans,
                "runs": self.runs, "bytes": self.bytes, "seconds": round(self.seconds, 2),
                "spans_per_second": round(self.spans / self.seconds) if self.seconds else None,
                "ground_truth": str(self.ground_truth_path) if self.ground_truth_path else None}


def _clear_previous(out: Path) -> None:
    """Remove what an earlier generation wrote here (and nothing else), then ensure `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in company.SERVICES:
        for old in sorted((out / TRACES_SUBDIR / name).glob("traces-*")):
            old.unlink()
    (out / "ground_truth.json").unlink(missing_ok=True)


def expected_spans(start_ns: int, days: int) -> float:
    """Spans `days` days from `start_ns` hold on average at volume scale 1."""
    total = 0.0
    for d in range(days):
        weekday = int(((start_ns // NS_PER_DAY) + d + 3) % 7)   # 1970-01-01 was a Thursday
        for wf in company.WORKFLOWS.values():
            runs = wf.sessions_per_day * company.WEEKDAY_PROFILE[weekday] * wf.runs_per_session
            if weekday == 0:
                runs += wf.scheduled_per_tenant * len(company.TENANTS)
            total += runs * SPANS_PER_RUN[wf.name]
    return total


def to_ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * NS_PER_S + when.microsecond * 1000


def generate(out_dir: str | Path, *, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS,
             end: datetime = DEFAULT_END, spans: int | None = None,
             incidents: list[int] | None = None, file_format: str | None = None,
             compress: bool = True, compression_level: int | None = None) -> GenerationResult:
    """Write `days` days of the company's traces ending at `end` into `out_dir`.

    The OTLP files go to `out_dir/traces/<service>/` (ingest that directory) and the
    ground truth to `out_dir/ground_truth.json`.

    `spans` scales the volume to roughly that many spans (default: the sample's own
    volume); `incidents` picks the planted incidents by number (default all, `[]` for
    a stationary history); `file_format` forces `proto` or `json` for every service.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if spans is not None and spans < 1:
        raise ValueError("spans must be positive")
    if file_format not in (None, "proto", "json"):
        raise ValueError(f"unknown file format {file_format!r} (proto or json)")
    began = time.perf_counter()
    out = Path(out_dir)
    _clear_previous(out)
    end_ns = to_ns(end)
    if end_ns % NS_PER_DAY:
        raise ValueError("end must be a UTC midnight, e.g. 2026-11-16T00:00Z")
    start_ns = end_ns - days * NS_PER_DAY
    scale = 1.0 if spans is None else spans / expected_spans(start_ns, days)
    if compression_level is None:
        compression_level = SAMPLE_COMPRESSION_LEVEL if spans is None else FAST_COMPRESSION_LEVEL
    plan = IncidentPlan(end_ns, incidents, start_ns)
    writer = TraceFileWriter(out, file_format, compress, compression_level)
    facts = ground_truth.Facts(end_ns)
    for d in range(days):
        day_ns = start_ns + d * NS_PER_DAY
        day_number = day_ns // NS_PER_DAY
        for wf_number, wf in enumerate(company.WORKFLOWS.values()):
            rng = np.random.default_rng(np.random.SeedSequence([seed, wf_number, day_number]))
            runs = make_runs(rng, wf, day_ns, scale)
            if not len(runs):
                continue
            blocks = workflows.BUILDERS[wf.name](runs, rng, plan)
            service = company.SERVICES[wf.service]
            versions = service_version(service.name, service.version, plan, runs.start_ns)
            for block in blocks:
                if len(block):
                    writer.add(service, conventions.to_spans(service, block, runs, versions))
            facts.add(runs, blocks, versions)
        label = datetime.fromtimestamp(day_ns // NS_PER_S, UTC).date().isoformat()
        last = d == days - 1
        writer.flush(end_ns if last else day_ns + NS_PER_DAY, label, drop_rest=last)

    run_table = facts.table("runs")
    meta = {
        "generator": "stepscope.sample_traces", "seed": seed, "days": days,
        "start": ground_truth.iso(start_ns), "end": ground_truth.iso(end_ns),
        "volume_scale": scale, "incidents_enabled": sorted(plan.enabled),
        "incidents_skipped": list(plan.skipped),
        "spans": facts.spans, "runs": len(run_table.get("start_ns", [])),
        "services": {s.name: {"version": s.version, "convention": s.convention,
                              "file_format": file_format or s.file_format}
                     for s in company.SERVICES.values()},
        "workflows": ground_truth.summary(run_table, days),
        "files": [{"path": f.path.relative_to(out).as_posix(), "spans": f.spans,
                   "requests": f.requests} for f in writer.files],
    }
    truth = ground_truth.compute(plan, facts, meta)
    truth_path = out / "ground_truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return GenerationResult(out, writer.files, facts.spans, meta["runs"],
                            time.perf_counter() - began, truth_path)
