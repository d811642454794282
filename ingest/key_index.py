"""Where each attribute key sits in each span's key list, for a whole batch at once.

Looking a key up in SQL (`list_position`) scans the span's list, and normalisation needs
dozens of keys per span: that scan was the largest cost of the whole query. Here the
batch's keys are dictionary-encoded once (Arrow) and, for every key the query needs, the
1-based position in every span is computed with a few numpy operations over the flat key
array. The query then reads `values[position]` directly.

The same encoding answers the other per-batch questions cheaply: which keys occur at all,
whether any span repeats a key (its map would be invalid), and which entries to keep when
content keys are dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True, eq=False)
class KeyIndex:
    """A batch's key lists: flat dictionary codes, their span, and the list offsets."""

    offsets: np.ndarray      # int64, n_spans + 1, starting at 0
    codes: np.ndarray        # int32 per flat entry, -1 for a null key
    spans: np.ndarray        # int64 per flat entry: the span it belongs to
    names: tuple[str, ...]   # code -> key

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> KeyIndex:
        lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        offsets = lists.offsets.to_numpy().astype(np.int64)
        flat = pc.list_flatten(lists)
        encoded = pc.dictionary_encode(flat)
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        spans = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(offsets - offsets[0], codes, spans, tuple(encoded.dictionary.to_pylist()))

    @property
    def n_spans(self) -> int:
        return len(self.offsets) - 1

    def present(self) -> frozenset[str]:
        return frozenset(self.names)

    @functools.cached_property
    def bad_keys(self) -> bool:
        """Some span has a null key or lists a key twice (its map could not be built)."""
        if len(self.codes) == 0:
            return False
        if (self.codes < 0).any():
            return True
        lists = pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)),
                                         pa.array(self.codes))
        series = pl.from_arrow(lists)
        return bool((series.list.n_unique() != series.list.len()).any())

    def has_bad_keys(self) -> bool:
        return self.bad_keys

    def positions(self, keys: Sequence[str]) -> list[pa.Array]:
        """Per key, the 1-based position of its first occurrence in each span (or null)."""
        lookup = np.full(len(self.names) + 1, -1, np.int32)   # last slot: null keys
        code_of = {name: i for i, name in enumerate(self.names)}
        for slot, key in enumerate(keys):
            if key in code_of:
                lookup[code_of[key]] = slot
        slots = lookup[self.codes]
        wanted = slots >= 0
        if self.has_bad_keys():
            wanted &= self.entry_mask(first_only=True)   # a repeated key: its first value
        hits = np.nonzero(wanted)[0]
        table = np.zeros((len(keys), self.n_spans), np.int32)
        spans = self.spans[hits]
        table[slots[hits], spans] = (hits - self.offsets[spans] + 1).astype(np.int32)
        return [pa.array(row, mask=row == 0) for row in table]

    def entry_mask(self, keep: Callable[[str], bool] | None = None,
                   first_only: bool = False) -> np.ndarray:
        """Which flat entries a map keeps: keys `keep` accepts, first occurrences only."""
        mask = self.codes >= 0
        if keep is not None:
            kept = np.array([keep(name) for name in self.names] + [False], dtype=bool)
            mask &= kept[self.codes]
        if first_only and len(self.codes):
            pair = self.spans * (len(self.names) + 1) + self.codes
            _, first = np.unique(pair, return_index=True)
            once = np.zeros(len(self.codes), dtype=bool)
            once[first] = True
            mask &= once
        return mask

    def filter_lists(self, keys: pa.ListArray, values: pa.ListArray, mask: np.ndarray
                     ) -> tuple[pa.ListArray, pa.ListArray]:
        """Keep the flat entries where `mask` holds, in both parallel list arrays (the
        arrays this index was built from, or lists with the same layout)."""
        kept = np.bincount(self.spans[mask], minlength=self.n_spans)
        offsets = pa.array(np.concatenate([[0], np.cumsum(kept)]).astype(np.int32))
        selector = pa.array(mask)
        return (pa.ListArray.from_arrays(offsets, pc.filter(pc.list_flatten(keys), selector)),
                pa.ListArray.from_arrays(offsets, pc.filter(pc.list_flatten(values), selector)))


def null_entries(values: pa.ListArray, mask: np.ndarray) -> pa.ListArray:
    """The same lists with the flat entries where `mask` holds set to null."""
    offsets = values.offsets.to_numpy().astype(np.int64)
    flat = pc.list_flatten(values)
    nulled = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), flat)
    return pa.ListArray.from_arrays(pa.array((offsets - offsets[0]).astype(np.int32)), nulled)
