"""FAQ retrieval: match a visitor's question to the site's own FAQ entries, locally, with a confidence.

A TF-IDF model over word 1–2-grams and character 2–5-grams (inside word boundaries, so typos and
word forms still overlap) is fitted on the entries' question variants. An entry's score is a blend
of its nearest variant and its centroid (mean of its variants' vectors): the nearest variant wins
on exact rephrasings, the centroid on entries with many varied examples. Pure: no ORM, no network.
"""

from __future__ import annotations

import re
import time
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
        self._unseen_idf = float(np.log(len(texts) + 1) + 1)  # smooth idf of a term in no text
        self._order = np.argsort(self.owner, kind="stable")
        self._starts = np.searchsorted(self.owner[self._order], np.arange(len(self.entry_ids)))

    def scores(self, questions: Sequence[str]) -> np.ndarray:
        """(n_questions × n_entries) confidence matrix."""
        if self.empty:
            return np.zeros((len(questions), 0))
        q, coverage = self._transform(questions)
        by_variant = (q @ self.variants.T).toarray()
        # Max over each entry's variants, vectorised per entry group.
        nearest = np.maximum.reduceat(by_variant[:, self._order], self._starts, axis=1)
        centroid = (q @ self.centroids.T).toarray()
        w = self.centroid_weight
        return ((1 - w) * nearest + w * centroid) * coverage[:, None]

    def _blocks(self, question: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(column indices, tf-idf weights) of each vectorizer's block, each block L2-normalised."""
        return self._read(question)[0]

    def coverage(self, question: str) -> float:
        """How much of the question the FAQ's vocabulary knows, 0..1 (see `_read`)."""
        return self._read(question)[1]

    def _read(self, question: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
        """The question's blocks (as `_blocks`) and its coverage: per block, the share of the
        question's tf-idf mass on words and n-grams the FAQ has, averaged over the blocks.

        The tf-idf vectors drop what the FAQ never saw, so "can I pay with crypto for a rocket
        cake" looks just like "can I pay for a cake". An unseen gram weighs what tf-idf gives a
        term in no document (idf = ln(n + 1) + 1); the confidence is the similarity times this
        coverage: a question the FAQ only half knows is only half answered by it. A per-question
        factor, so the best entry (top-1) is the same as without it.
        """
        out = []
        shares = []
        for analyze, vocabulary, idf, offset in self._fast:
            counts: dict[int, int] = {}
            unseen: dict[str, int] = {}
            for gram in analyze(question):
                j = vocabulary.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
                else:
                    unseen[gram] = unseen.get(gram, 0) + 1
            unseen_mass = sum((1.0 + np.log(c)) ** 2 for c in unseen.values()) * self._unseen_idf**2
            if not counts:
                if unseen:
                    shares.append(0.0)
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * idf[
                idx
            ]
            norm = float(np.linalg.norm(weights))
            shares.append(norm / np.sqrt(norm**2 + unseen_mass))
            out.append((idx + offset, weights / norm))
        return out, float(np.mean(shares)) if shares else 0.0

    def transform(self, questions: Sequence[str]) -> sparse.csr_matrix:
        """The fitted TF-IDF vectors of `questions` (L2-normalised).

        Equal to `normalize(self.vectorizer.transform(questions))`, computed directly from the
        fitted vocabularies: scikit-learn's per-call validation and joblib dispatch cost ~10 ms,
        which is most of a chat reply's budget; this takes well under a millisecond per question.
        """
        return self._transform(questions)[0]

    def _transform(self, questions: Sequence[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """`transform` and each question's coverage."""
        rows, cols, vals = [], [], []
        coverage = np.zeros(len(questions))
        for i, question in enumerate(questions):
            blocks, coverage[i] = self._read(question)
            for idx, weights in blocks:
                rows.append(np.full(len(idx), i))
                cols.append(idx)
                vals.append(weights)
        if not vals:
            return sparse.csr_matrix((len(questions), self._width)), coverage
        matrix = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(questions), self._width),
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix), coverage

    def _score_one(self, question: str) -> np.ndarray:
        """scores([question])[0] without sparse-matrix overhead: one dense query vector."""
        dense = np.zeros(self._width)
        blocks, coverage = self._read(question)
        for idx, weights in blocks:
            dense[idx] = weights
        norm = np.linalg.norm(dense)
        if norm:
            dense /= norm
        by_variant = self.variants @ dense
        nearest = np.maximum.reduceat(by_variant[self._order], self._starts)
        w = self.centroid_weight
        return ((1 - w) * nearest + w * (self.centroids @ dense)) * coverage

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


# --- Calibrating the answer threshold on the site's own FAQ ------------------------------------------

# Questions no small business's FAQ answers (weather, homework, trivia, chit-chat): the far end of
# "out of scope". The near end comes from the site's own FAQ, holding out whole entries.
GENERIC_OUT_OF_SCOPE: tuple[str, ...] = (
    "What's the weather going to be like tomorrow?",
    "Who won the football match last night?",
    "Can you write me a poem about the sea?",
    "What is the capital of Australia?",
    "Tell me a joke",
    "How tall is the Eiffel Tower?",
    "Can you help me with my maths homework?",
    "What is the meaning of life?",
    "Who is the president of France?",
    "Translate this sentence into Japanese",
    "What's a good movie to watch tonight?",
    "How do I fix my car's engine?",
    "Do you believe in ghosts?",
    "What's your favourite colour?",
    "How many legs does a spider have?",
    "Recommend a good book about space travel",
    "Is it going to snow at Christmas?",
    "What time is it in Tokyo right now?",
    "Explain quantum physics to me",
    "Which team will win the world cup?",
    "asdf qwerty",
)
DEFAULT_THRESHOLD = 0.35
MIN_THRESHOLD, MAX_THRESHOLD = 0.15, 0.9
MAX_VARIANT_FOLDS = 8
ENTRY_FOLDS = 5


@dataclass(frozen=True)
class Calibration:
    """The answer threshold chosen on held-out questions of one FAQ, and how it did there."""

    threshold: float
    calibrated: bool  # False: too few questions to calibrate; `threshold` is the default
    in_scope: int = 0  # held-out variants scored (leave-one-variant-out)
    out_of_scope: int = 0  # held-out entries' questions + generic off-topic questions
    answered_correctly: float = 0.0  # share of held-out in-scope questions answered right at `threshold`
    declined_out_of_scope: float = 0.0  # share of out-of-scope questions declined at `threshold`
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "threshold": round(self.threshold, 3),
            "calibrated": self.calibrated,
            "in_scope": self.in_scope,
            "out_of_scope": self.out_of_scope,
            "answered_correctly": round(self.answered_correctly, 3),
            "declined_out_of_scope": round(self.declined_out_of_scope, 3),
            "seconds": round(self.seconds, 3),
        }


def _top1(matcher: FaqMatcher, questions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(entry id, confidence) of each question's best entry."""
    scores = matcher.scores(questions)
    best = np.argmax(scores, axis=1)
    return np.asarray(matcher.entry_ids)[best], np.clip(scores[np.arange(len(best)), best], 0.0, 1.0)


def held_out_scores(
    entries: Sequence[tuple[int, Sequence[str]]], *, generic: Sequence[str] = GENERIC_OUT_OF_SCOPE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidences on questions the matcher did not see: (in-scope confidence, in-scope correct,
    out-of-scope confidence).

    In scope: leave-one-variant-out in folds (fold j holds out the j-th text of every entry that
    has another). Out of scope: whole entries held out in folds (their texts are questions near the
    business that the rest of the FAQ does not answer), plus `generic` off-topic questions.
    """
    texts = [(entry_id, [v for v in variants if v.strip()]) for entry_id, variants in entries]
    texts = [(entry_id, variants) for entry_id, variants in texts if variants]
    in_conf: list[np.ndarray] = []
    in_ok: list[np.ndarray] = []
    out_conf: list[np.ndarray] = []
    longest = max((len(v) for _, v in texts), default=0)
    for j in range(min(longest, MAX_VARIANT_FOLDS)):
        held = [(entry_id, v[j]) for entry_id, v in texts if len(v) > j + (j == 0) and len(v) >= 2]
        if not held:
            continue
        train = [(entry_id, [t for i, t in enumerate(v) if i != j or len(v) < 2]) for entry_id, v in texts]
        predicted, confidence = _top1(FaqMatcher(train), [q for _, q in held])
        in_conf.append(confidence)
        in_ok.append(predicted == np.asarray([entry_id for entry_id, _ in held]))
    if len(texts) >= 2:
        folds = min(ENTRY_FOLDS, len(texts))
        for k in range(folds):
            train = [e for i, e in enumerate(texts) if i % folds != k]
            held_texts = [t for i, (_, v) in enumerate(texts) if i % folds == k for t in v]
            out_conf.append(_top1(FaqMatcher(train), held_texts)[1])
        if generic:
            out_conf.append(_top1(FaqMatcher(texts), list(generic))[1])
    empty = np.zeros(0)
    return (
        np.concatenate(in_conf) if in_conf else empty,
        np.concatenate(in_ok) if in_ok else np.zeros(0, dtype=bool),
        np.concatenate(out_conf) if out_conf else empty,
    )


def choose_threshold(
    in_conf: np.ndarray, in_ok: np.ndarray, out_conf: np.ndarray
) -> tuple[float, float, float]:
    """The threshold that best balances answering in-scope questions right and declining the rest.

    Maximises the mean of (share of in-scope questions answered with the right entry) and (share of
    out-of-scope questions declined); among equally good thresholds, the middle of the best gap.
    Returns (threshold, answered correctly, declined out of scope).
    """
    values = np.unique(np.concatenate([in_conf, out_conf, [MIN_THRESHOLD, MAX_THRESHOLD]]))
    values = values[(values >= MIN_THRESHOLD) & (values <= MAX_THRESHOLD)]
    # Candidates: every observed confidence (answer at >= it) and the midpoints between them.
    candidates = np.unique(np.concatenate([values, (values[:-1] + values[1:]) / 2]))
    answered_right = ((in_conf[None, :] >= candidates[:, None]) & in_ok[None, :]).mean(axis=1)
    declined = (out_conf[None, :] < candidates[:, None]).mean(axis=1)
    balanced = (answered_right + declined) / 2
    best = np.flatnonzero(np.isclose(balanced, balanced.max()))
    # The best thresholds form runs; take the middle of the widest-margin (first) run.
    run_end = best[0]
    while run_end + 1 in best:
        run_end += 1
    middle = float((candidates[best[0]] + candidates[run_end]) / 2)
    chosen = int(np.argmin(np.abs(candidates - middle)))
    return middle, float(answered_right[chosen]), float(declined[chosen])


def calibrate(
    entries: Sequence[tuple[int, Sequence[str]]], *, generic: Sequence[str] = GENERIC_OUT_OF_SCOPE
) -> Calibration:
    """Choose an FAQ's answer threshold on its own held-out questions (see `held_out_scores`)."""
    started = time.perf_counter()
    in_conf, in_ok, out_conf = held_out_scores(entries, generic=generic)
    if len(in_conf) < 5 or len(out_conf) < 5:
        return Calibration(
            DEFAULT_THRESHOLD, False, len(in_conf), len(out_conf), seconds=time.perf_counter() - started
        )
    threshold, right, declined = choose_threshold(in_conf, in_ok, out_conf)
    return Calibration(
        threshold=threshold,
        calibrated=True,
        in_scope=len(in_conf),
        out_of_scope=len(out_conf),
        answered_correctly=right,
        declined_out_of_scope=declined,
        seconds=time.perf_counter() - started,
    )
