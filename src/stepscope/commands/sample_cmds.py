"""`stepscope sample generate`: write the fictional company's traces, any size."""

from __future__ import annotations

from datetime import UTC

import click

from stepscope.cli import cli, emit, format_option, instant_option_value


def _incident_numbers(value: str) -> list[int] | None:
    text = value.strip().lower()
    if text == "all":
        return None
    if text == "none":
        return []
    try:
        numbers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        numbers = [0]
    if not numbers or any(n < 1 or n > 7 for n in numbers):
        raise click.BadParameter(f"{value!r}: expected all, none or numbers 1-7 such as 1,3",
                                 param_hint="--incidents")
    return numbers


@cli.group()
def sample() -> None:
    """The bundled sample company's traces, and bigger sets generated like it."""


@sample.command("generate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the OTLP files and ground_truth.json into.")
@click.option("--seed", type=int, default=None, help="Random seed.  [default: 42]")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Days of history, ending at --end.  [default: 14]")
@click.option("--spans", type=click.IntRange(min=1), default=None,
              help="Scale the volume to about this many spans (e.g. 1000000 for benchmarks). "
                   "[default: the sample's own volume, about 3,300 spans a day]")
@click.option("--end", "end_text", default=None,
              help="End of the data: a UTC midnight, ISO-8601.  [default: 2026-11-16T00:00Z]")
@click.option("--incidents", "incidents_text", default="all", show_default=True,
              help="Planted incidents: all, none (a stationary history) or numbers like 1,3.")
@click.option("--otlp-format", type=click.Choice(["mixed", "proto", "json"]), default="mixed",
              show_default=True,
              help="mixed: each service as its team exports (protobuf or OTLP/JSON Lines).")
@click.option("--no-compress", is_flag=True, help="Write the files without zstd/gzip.")
@format_option("table", "json")
def generate_cmd(out_dir: str, seed: int | None, days: int | None, spans: int | None,
                 end_text: str | None, incidents_text: str, otlp_format: str, no_compress: bool,
                 fmt: str) -> None:
    """Write a deterministic history of the sample company's agents into --out.

    The same arguments always give the same bytes; with no arguments but --out the
    result is the bundled sample. ground_truth.json beside the files says where each
    planted incident is and what it changes.
    """
    from stepscope import sample_traces

    end = sample_traces.DEFAULT_END
    if end_text is not None:
        end = instant_option_value(end_text, "--end", None).astimezone(UTC)
        if (end.hour, end.minute, end.second, end.microsecond) != (0, 0, 0, 0):
            raise click.BadParameter(f"{end_text!r} is not a UTC midnight (e.g. 2026-11-16)",
                                     param_hint="--end")
    result = sample_traces.generate(
        out_dir,
        seed=sample_traces.DEFAULT_SEED if seed is None else seed,
        days=sample_traces.DEFAULT_DAYS if days is None else days,
        end=end, spans=spans, incidents=_incident_numbers(incidents_text),
        file_format=None if otlp_format == "mixed" else otlp_format,
        compress=not no_compress,
    )
    emit(result.as_dict(), fmt)
