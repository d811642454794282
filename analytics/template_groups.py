"""Grouping near-identical failure templates for display, with scikit-learn.

Masking leaves some variants apart that a person would call one failure: a field name
that differs, a reworded suffix, the same upstream outage seen by two tools. Within one
error type and HTTP status, templates are compared by cosine similarity of TF-IDF
vectors over words and character n-grams, and grouped by average-linkage agglomerative
clustering cut at a similarity threshold.

The groups are for display only. Each template keeps its own fingerprint, and a group
reports its members' fingerprints; ids never come from a clustering label. Only
templates are clustered (thousands at most), never rows, and a block with more than
`MAX_GROUPED_PER_BLOCK` templates groups its most frequent ones and leaves the rest
alone, which bounds memory at a few tens of megabytes.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

#: Templates at least this similar (cosine of TF-IDF vectors, 0..1) are shown as one
#: cluster: near-identical templates score 0.65-0.8, unrelated ones of one error type
#: under 0.45.
DEFAULT_SIMILARITY = 0.6
#: Templates per (error type, HTTP status) block that take part in grouping; the
#: distance matrix of this many is 8 * n^2 bytes (72 MB at 3,000).
MAX_GROUPED_PER_BLOCK = 3000
# Placeholders such as <NUM> are one word; otherwise runs of letters or digits.
_WORD_PATTERN = r"<[A-Z]+>|[A-Za-z]+|\d+"


def _vectors(templates: Sequence[str]) -> sp.csr_matrix:
    """L2-normalised TF-IDF over words and character 3-5-grams, the two halves equal."""
    words = TfidfVectorizer(token_pattern=_WORD_PATTERN, lowercase=True, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True,
                            sublinear_tf=True)
    texts = [t if t.strip() else "<EMPTY>" for t in templates]
    parts = []
    for vectorizer in (words, chars):
        try:
            parts.append(vectorizer.fit_transform(texts))
        except ValueError:  # no token at all in this block (e.g. only punctuation)
            continue
    if not parts:
        return sp.csr_matrix(np.ones((len(texts), 1)))
    return normalize(sp.hstack([normalize(p) for p in parts]).tocsr())


def _cluster_block(vectors: sp.csr_matrix, counts: np.ndarray, similarity: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0..k-1) and the representative of each label for one block."""
    n = vectors.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64), np.ones(1, dtype=bool)
    sim = np.clip((vectors @ vectors.T).toarray(), 0.0, 1.0)
    model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                    distance_threshold=1.0 - similarity)
    labels = model.fit_predict(1.0 - sim)
    # The representative is the count-weighted medoid: the member most similar to the
    # group's failures, so a label reads like what most of them said.
    representative = np.zeros(n, dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        score = sim[np.ix_(members, members)] @ counts[members]
        representative[members[int(np.argmax(score))]] = True
    return labels.astype(np.int64), representative


def group_templates(templates: Sequence[str], blocks: Sequence[Hashable],
                    counts: Sequence[int], similarity: float = DEFAULT_SIMILARITY
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Group ids (0..k-1) per template, and which template represents each group.

    Templates group only with templates of the same block (error type and HTTP status).
    The result depends on the order of the input, so callers pass templates in a stable
    order (sorted by fingerprint) to get the same groups on every run.
    """
    n = len(templates)
    groups = np.full(n, -1, dtype=np.int64)
    representative = np.zeros(n, dtype=bool)
    weights = np.asarray(counts, dtype=np.float64)
    by_block: dict[Hashable, list[int]] = {}
    for i, block in enumerate(blocks):
        by_block.setdefault(block, []).append(i)
    # One vocabulary and IDF over every template: words that many different failures
    # share ("error", "API", <NUM>) weigh little, wherever they occur.
    vectors = _vectors(templates) if n else None
    next_group = 0
    for members in by_block.values():
        idx = np.asarray(members, dtype=np.int64)
        if len(idx) > MAX_GROUPED_PER_BLOCK:
            order = np.argsort(-weights[idx], kind="stable")
            grouped, alone = idx[order[:MAX_GROUPED_PER_BLOCK]], idx[order[MAX_GROUPED_PER_BLOCK:]]
        else:
            grouped, alone = idx, idx[:0]
        labels, reps = _cluster_block(vectors[grouped], weights[grouped], similarity)
        groups[grouped] = labels + next_group
        representative[grouped] = reps
        next_group += int(labels.max()) + 1
        for i in alone:
            groups[i] = next_group
            representative[i] = True
            next_group += 1
    return groups, representative
