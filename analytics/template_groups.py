"""Grouping near-identical failure templates for display: template mining, then scikit-learn.

Masking leaves apart some variants a person would call one failure: a quoted field name
that differs, a reworded suffix, the same upstream outage seen by two tools. Two steps
bring them together, always within one error type and HTTP status (a block):

1. Template mining. Templates with the same number of tokens that differ in a single
   token position are joined (transitively), and the group's mined template shows the
   positions that vary as `<*>`: `unknown field 'sso.domain'` and `unknown field
   'quiet_hours'` become `unknown field <*>`. This is a hash join on "the template with
   one position left out", linear in the number of templates.
2. Similarity. The mined templates are compared by the cosine similarity of TF-IDF
   vectors over words and character n-grams, and grouped by average-linkage
   agglomerative clustering cut at a similarity threshold; counts weight the choice of
   the template that labels a group.

The groups are for display only. Each template keeps its own fingerprint and a group
reports its members' fingerprints; ids never come from a clustering label. Only
templates are clustered, never rows, and a block with more than `MAX_GROUPED_PER_BLOCK`
mined templates groups its most frequent ones and leaves the rest alone, which bounds
the distance matrix at a few tens of megabytes.
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
#: Mined templates per block that take part in the similarity step; the distance matrix
#: of this many is 8 * n^2 bytes (72 MB at 3,000).
MAX_GROUPED_PER_BLOCK = 3000
#: Mining joins templates of at least this many tokens (so that the one position that
#: differs is at most a quarter of them).
MIN_MINED_TOKENS = 4
WILDCARD = "<*>"
# Placeholders such as <NUM> are one word; otherwise runs of letters or digits.
_WORD_PATTERN = r"<[A-Z]+>|<\*>|[A-Za-z]+|\d+"


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def mine_templates(templates: Sequence[str], blocks: Sequence[Hashable]
                   ) -> tuple[np.ndarray, list[str]]:
    """Mined-group index (0..k-1, in order of first member) per template, and each
    group's mined template (positions that vary across its members as `<*>`)."""
    n = len(templates)
    tokens = [t.split(" ") for t in templates]
    sets = _UnionFind(n)
    seen: dict[tuple, int] = {}
    for i, (block, words) in enumerate(zip(blocks, tokens, strict=True)):
        if len(words) < MIN_MINED_TOKENS:
            continue
        for p in range(len(words)):
            key = (block, len(words), p, " ".join(words[:p]), " ".join(words[p + 1:]))
            first = seen.setdefault(key, i)
            if first != i:
                sets.union(first, i)
    roots: dict[int, int] = {}
    groups = np.array([roots.setdefault(sets.find(i), len(roots)) for i in range(n)], dtype=np.int64)
    members: list[list[list[str]]] = [[] for _ in roots]
    for g, words in zip(groups.tolist(), tokens, strict=True):
        members[g].append(words)
    mined = []
    for group in members:
        if len(group) == 1:
            mined.append(" ".join(group[0]))
            continue
        mined.append(" ".join(column[0] if len(set(column)) == 1 else WILDCARD
                              for column in zip(*group, strict=True)))
    return groups, mined


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
        except ValueError:  # no token at all (e.g. only punctuation)
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


def _similar_groups(texts: Sequence[str], blocks: Sequence[Hashable], counts: np.ndarray,
                    similarity: float) -> tuple[np.ndarray, np.ndarray]:
    n = len(texts)
    groups = np.full(n, -1, dtype=np.int64)
    representative = np.zeros(n, dtype=bool)
    by_block: dict[Hashable, list[int]] = {}
    for i, block in enumerate(blocks):
        by_block.setdefault(block, []).append(i)
    # One vocabulary and IDF over every template: words that many different failures
    # share ("error", "API", <NUM>) weigh little, wherever they occur.
    vectors = _vectors(texts) if n else None
    next_group = 0
    for members in by_block.values():
        idx = np.asarray(members, dtype=np.int64)
        order = np.argsort(-counts[idx], kind="stable")
        grouped, alone = idx[order[:MAX_GROUPED_PER_BLOCK]], idx[order[MAX_GROUPED_PER_BLOCK:]]
        labels, reps = _cluster_block(vectors[grouped], counts[grouped], similarity)
        groups[grouped] = labels + next_group
        representative[grouped] = reps
        next_group += int(labels.max()) + 1
        for i in alone:
            groups[i] = next_group
            representative[i] = True
            next_group += 1
    return groups, representative


def group_templates(templates: Sequence[str], blocks: Sequence[Hashable],
                    counts: Sequence[int], similarity: float = DEFAULT_SIMILARITY
                    ) -> tuple[np.ndarray, list[str]]:
    """Display-group id per template, and each group's label (a mined template).

    Templates group only with templates of the same block (error type and HTTP status).
    The result depends on the order of the input, so callers pass templates in a stable
    order (sorted by fingerprint) to get the same groups on every run.
    """
    weights = np.asarray(counts, dtype=np.float64)
    mined_group, mined = mine_templates(templates, blocks)
    k = len(mined)
    mined_counts = np.zeros(k)
    np.add.at(mined_counts, mined_group, weights)
    mined_blocks: list[Hashable] = [None] * k
    for g, block in zip(mined_group.tolist(), blocks, strict=True):
        mined_blocks[g] = block
    similar, representative = _similar_groups(mined, mined_blocks, mined_counts, similarity)
    labels = [""] * (int(similar.max()) + 1 if k else 0)
    for g in np.flatnonzero(representative):
        labels[similar[g]] = mined[g]
    return similar[mined_group], labels
