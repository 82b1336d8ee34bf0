"""Every bench and eval command runs end to end at a tiny size and ends with its JSON line.

The figures themselves are measured by hand on a quiet machine (docs/benchmarks.md); these tests
only keep the commands working as the code under them moves.
"""

from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL (DATABASE_URL): COPY, and servers in child processes",
)


def last_json(command: str, *args: str) -> dict:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_bench_scoring() -> None:
    figures = last_json("bench_scoring", "--leads", "300", "--interactions", "3000", "--samples", "5")
    assert figures["leads"] == 300
    assert figures["first_recompute_changed"] == 300
    assert figures["single_lead_ms_p95"] > 0
    if settings.REDIS_URL:  # events go through a real worker process
        assert figures["event_to_score_ms_p95"] is not None


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_bench_ml() -> None:
    figures = last_json("bench_ml", "--train", "1500", "--predict", "3000", "--chunk", "1000", "--fresh")
    assert figures["predicted"] == 3000
    assert 0.5 < figures["time_split_roc_auc"] <= 1


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_bench_pages() -> None:
    figures = last_json(
        "bench_pages",
        *("--leads", "500", "--interactions", "1500", "--duration", "5", "--warmup", "1"),
        *("--workers", "1", "--clients", "1"),
    )
    assert figures["error_count"] == 0
    assert sum(page["requests"] for page in figures["pages"].values()) > 0


@needs_postgres  # the uvicorn it starts must see the test database (SQLite's is in memory)
@pytest.mark.django_db(transaction=True)
def test_bench_chat() -> None:
    figures = last_json(
        "bench_chat", "--conversations", "2", "--messages", "1", "--ramp", "0.2", "--think", "0.1"
    )
    assert figures["errors"] == 0
    assert figures["ws_delivered"] == figures["ws_expected"]


@needs_postgres  # the uvicorn it starts must see the test database (SQLite's is in memory)
@pytest.mark.django_db(transaction=True)
def test_bench_alerts() -> None:
    figures = last_json("bench_alerts", "--staff", "2", "--handoffs", "2", "--gap", "0.1", "--workers", "1")
    assert figures["errors"] == 0
    assert figures["alerts"] == figures["alerts_expected"] == 4


def test_eval_intents(tmp_path: Path) -> None:
    path = tmp_path / "intents.csv"
    questions = {
        "card_arrival": [
            "Where is my card?",
            "My card has not arrived",
            "card still not here",
            "when will my card come",
        ],
        "refund": [
            "I want my money back",
            "how do I get a refund",
            "refund my order please",
            "return and refund",
        ],
        "opening": [
            "when are you open",
            "opening hours please",
            "what time do you close",
            "are you open sunday",
        ],
    }
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category", "split"])
        for category, texts in questions.items():
            writer.writerows([text, category, "train" if i < 3 else "test"] for i, text in enumerate(texts))
    figures = last_json("eval_intents", "--file", str(path))
    assert figures  # the command's own figures; their meaning is documented in docs/benchmarks.md


def test_eval_sentiment(tmp_path: Path) -> None:
    path = tmp_path / "tweets.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "airline_sentiment"])
        writer.writerows(
            [
                ["This is terrible, worst service ever", "negative"],
                ["I love this, thank you so much!", "positive"],
                ["The flight leaves at 9", "neutral"],
                ["Awful delay and rude staff", "negative"],
            ]
        )
    figures = last_json("eval_sentiment", "--file", str(path))
    assert figures["rows"] == 4
