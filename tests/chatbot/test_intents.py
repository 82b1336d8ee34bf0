from __future__ import annotations

from chatbot.intents import FaqMatcher
from demo.site import DEMO_FAQ


def _matcher() -> FaqMatcher:
    return FaqMatcher([(i, [q, *v]) for i, (q, v, _a) in enumerate(DEMO_FAQ)])


def test_paraphrases_find_their_entry_above_the_default_threshold() -> None:
    m = _matcher()
    cases = {
        "what time do you open": 0,
        "can I bring my dog?": 14,
        "I need a birthday cake": 4,
        "where do I park": 2,
    }
    for text, expected in cases.items():
        match = m.match(text)
        assert match is not None
        assert match.entry_id == expected, text
        assert match.confidence >= 0.35, text


def test_off_topic_questions_stay_below_the_threshold() -> None:
    m = _matcher()
    for text in [
        "quantum chromodynamics lecture",
        "do you sell spaceships",
        "tell me a joke",
        "who won the football game",
    ]:
        assert m.match(text).confidence < 0.35, text


def test_typos_still_match() -> None:
    assert _matcher().match("glutn fre bred?").entry_id == 6


def test_empty_faq_and_empty_question() -> None:
    assert FaqMatcher([]).match("hello") is None
    assert _matcher().match("   ") is None
