"""FAQ retrieval: match a visitor's question to the site's own FAQ entries, locally, with a confidence.

A TF-IDF model over word 1–2-grams and character 2–5-grams (inside word boundaries, so typos and
word forms still overlap) is fitted on the entries' question variants. An entry's score is a blend
of its nearest variant and its centroid (mean of its variants' vectors): the nearest variant wins
on exact rephrasings, the centroid on entries with many varied examples. Pure: no ORM, no network.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import normalize

_WS = re.compile(r"\s+")
_APOSTROPHE = re.compile(r"[’`´]")


_WORD = re.compile(r"[\w']+")
# Function words ("do you", "what is") carry no topic; without this, "do you sell bicycles"
# looks like "do you sell gift cards". Negations and question words that change meaning stay.
_KEEP = {
    "not",
    "no",
    "nor",
    "when",
    "where",
    "how",
    "why",
    "who",
    "which",
    "open",
    "off",
    "out",
    "call",
    "free",
}
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS - _KEEP) | {
    "hi",
    "hello",
    "please",
    "thanks",
    "i'm",
    "you're",
    "can't",
}


def normalise(text: str) -> str:
    return _WS.sub(" ", _APOSTROPHE.sub("'", text.lower())).strip()


def content_words(text: str) -> str:
    """Lower-cased text without stop words (the whole text if nothing else is left)."""
    words = _WORD.findall(normalise(text))
    kept = [w for w in words if w not in STOP_WORDS]
    return " ".join(kept or words)


@dataclass(frozen=True)
class Match:
    entry_id: int
    confidence: float  # 0..1, cosine-based; compare with the site's threshold
    runner_up_id: int | None = None


def _vectorizer() -> FeatureUnion:
    return FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    preprocessor=content_words,
                    ngram_range=(1, 2),
                    sublinear_tf=True,
                    token_pattern=r"(?u)\b\w+\b",
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    preprocessor=normalise,
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    sublinear_tf=True,
                    min_df=1,
                ),
            ),
        ]
    )


class FaqMatcher:
    """Fitted once per FAQ version; `match` is a sparse dot product (sub-millisecond for small FAQs)."""

    def __init__(self, entries: Sequence[tuple[int, Sequence[str]]], *, centroid_weight: float = 0.6) -> None:
        texts: list[str] = []
        owners: list[int] = []
        self.entry_ids: list[int] = []
        for index, (entry_id, variants) in enumerate(e for e in entries if any(v.strip() for v in e[1])):
            self.entry_ids.append(entry_id)
            for variant in variants:
                if variant.strip():
                    texts.append(variant)
                    owners.append(index)
        self.centroid_weight = centroid_weight
        self._fast: list[tuple[Any, dict[str, int], np.ndarray, int]] = []
        self.empty = not texts
        if self.empty:
            return
        self.vectorizer = _vectorizer()
        variant_vectors = normalize(self.vectorizer.fit_transform(texts))
        self.variants = variant_vectors.tocsr()
        self.owner = np.asarray(owners)
        # Centroids: one sparse matrix product (entries × variants) · (variants × features).
        membership = sparse.csr_matrix(
            (np.ones(len(owners)), (self.owner, np.arange(len(owners)))),
            shape=(len(self.entry_ids), len(owners)),
        )
        self.centroids = normalize(membership @ self.variants).tocsr()
        # What transform needs from the fitted vectorizers, fetched once.
        self._fast = []
        offset = 0
        for _name, vec in self.vectorizer.transformer_list:
            self._fast.append((vec.build_analyzer(), vec.vocabulary_, vec.idf_, offset))
            offset += len(vec.vocabulary_)
        self._width = offset
        self._order = np.argsort(self.owner, kind="stable")
        self._starts = np.searchsorted(self.owner[self._order], np.arange(len(self.entry_ids)))

    def scores(self, questions: Sequence[str]) -> np.ndarray:
        """(n_questions × n_entries) confidence matrix."""
        if self.empty:
            return np.zeros((len(questions), 0))
        q = self.transform(questions)
        by_variant = (q @ self.variants.T).toarray()
        # Max over each entry's variants, vectorised per entry group.
        nearest = np.maximum.reduceat(by_variant[:, self._order], self._starts, axis=1)
        centroid = (q @ self.centroids.T).toarray()
        w = self.centroid_weight
        return (1 - w) * nearest + w * centroid

    def _blocks(self, question: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(column indices, tf-idf weights) of each vectorizer's block, each block L2-normalised."""
        out = []
        for analyze, vocabulary, idf, offset in self._fast:
            counts: dict[int, int] = {}
            for gram in analyze(question):
                j = vocabulary.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[
                idx
            ]
            out.append((idx + offset, weights / np.linalg.norm(weights)))
        return out

    def transform(self, questions: Sequence[str]) -> sparse.csr_matrix:
        """The fitted TF-IDF vectors of `questions` (L2-normalised).

        Equal to `normalize(self.vectorizer.transform(questions))`, computed directly from the
        fitted vocabularies: scikit-learn's per-call validation and joblib dispatch cost ~10 ms,
        which is most of a chat reply's budget; this takes well under a millisecond per question.
        """
        rows, cols, vals = [], [], []
        for i, question in enumerate(questions):
            for idx, weights in self._blocks(question):
                rows.append(np.full(len(idx), i))
                cols.append(idx)
                vals.append(weights)
        if not vals:
            return sparse.csr_matrix((len(questions), self._width))
        matrix = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(questions), self._width),
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix)

    def _score_one(self, question: str) -> np.ndarray:
        """scores([question])[0] without sparse-matrix overhead: one dense query vector."""
        dense = np.zeros(self._width)
        for idx, weights in self._blocks(question):
            dense[idx] = weights
        norm = np.linalg.norm(dense)
        if norm:
            dense /= norm
        by_variant = self.variants @ dense
        nearest = np.maximum.reduceat(by_variant[self._order], self._starts)
        w = self.centroid_weight
        return (1 - w) * nearest + w * (self.centroids @ dense)

    def match(self, question: str) -> Match | None:
        """Best entry for one question, or None when there is nothing to match against."""
        if self.empty or not question.strip():
            return None
        row = self._score_one(question)
        best = int(np.argmax(row))
        runner = int(np.argsort(row)[-2]) if len(row) > 1 else None
        return Match(
            entry_id=self.entry_ids[best],
            confidence=float(np.clip(row[best], 0.0, 1.0)),
            runner_up_id=self.entry_ids[runner] if runner is not None else None,
        )

    def predict(self, questions: Sequence[str]) -> list[int]:
        """Top-1 entry id per question (for evaluation)."""
        if self.empty:
            return []
        return [self.entry_ids[i] for i in np.argmax(self.scores(questions), axis=1)]
