"""Sentiment of a visitor message: VADER's compound score (-1..1), a local lexicon model.

The lexicon ships inside the vaderSentiment package, so nothing is downloaded. The analyzer is
built once per process (loading the lexicon takes ~50 ms; scoring a message takes well under 1 ms).
"""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def sentiment_score(text: str) -> float:
    """VADER compound score of `text`, rounded to 3 decimals; 0.0 for empty text."""
    if not text.strip():
        return 0.0
    return round(float(_analyzer().polarity_scores(text[:2000])["compound"]), 3)


def sentiment_label(score: float, *, margin: float = 0.05) -> str:
    """VADER's conventional three classes: positive / neutral / negative."""
    if score >= margin:
        return "positive"
    if score <= -margin:
        return "negative"
    return "neutral"
