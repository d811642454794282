"""Failure clusters of a whole replay, counted per hour, to answer "new?" at many instants.

A replay asks the new-failure-cluster rule the same question hour after hour: which
clusters failed in the window and never in the baseline before it? Clustering once over
the whole replayed period, with hourly trend counts, answers every hour-aligned instant
by summing counts: the same clusters (stable ids from `stepscope.analytics.clusters`),
the same counts, one clustering instead of hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from stepscope.analytics.clusters import failure_clusters
from stepscope.analytics.filters import Filters
from stepscope.config import Config
from stepscope.store import ReadConnection
from stepscope.timeparse import Window

BUCKET = timedelta(hours=1)


def aligned(instants: list[datetime], durations: list[timedelta]) -> bool:
    """True when every instant and duration is a whole number of buckets (UTC hours)."""
    size = BUCKET.total_seconds()
    return (all(t.timestamp() % size == 0 for t in instants)
            and all(d.total_seconds() % size == 0 for d in durations))


@dataclass(frozen=True)
class ClusterHistory:
    clusters: list[dict]
    counts: np.ndarray        # clusters x buckets
    start: datetime           # start of the first bucket
    end: datetime

    @classmethod
    def build(cls, con: ReadConnection, filters: Filters, start: datetime,
              end: datetime, config: Config | None = None) -> ClusterHistory:
        frame = failure_clusters(con, filters.with_window(start, end),
                                 baseline=Window(start - BUCKET, start), now=end, bucket=BUCKET,
                                 config=config)
        rows = frame.to_dicts()
        width = int((end - start) / BUCKET)
        counts = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            offset = int((row["trend_start"] - start) / BUCKET)
            trend = np.asarray(row["trend"], dtype=np.int64)[: max(0, width - offset)]
            counts[i, offset:offset + len(trend)] = trend
        return cls(rows, counts, start, end)

    def covers(self, start: datetime, end: datetime) -> bool:
        return self.start <= start and end <= self.end

    def new_between(self, window: Window, baseline: Window) -> list[dict]:
        """Clusters that failed in `window` and not in `baseline`, with `count` in window."""
        now = self._sum(window)
        before = self._sum(baseline)
        out = []
        for i in np.flatnonzero((now > 0) & (before == 0)).tolist():
            out.append({**self.clusters[i], "count": int(now[i]), "is_new": True})
        return out

    def _sum(self, window: Window) -> np.ndarray:
        lo = int((window.start - self.start) / BUCKET)
        hi = int((window.end - self.start) / BUCKET)
        return self.counts[:, lo:hi].sum(axis=1)


def new_clusters_now(con: ReadConnection, filters: Filters, window: Window,
                     baseline: Window, config: Config | None = None) -> list[dict]:
    """The same answer for one instant, straight from the clustering of its windows."""
    frame = failure_clusters(con, filters.with_window(window.start, window.end),
                             baseline=baseline, now=window.end, config=config)
    return frame.filter(pl.col("is_new")).to_dicts()
