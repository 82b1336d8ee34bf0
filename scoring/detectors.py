"""Spam and junk-lead detectors. Pure: strings in, booleans out; no ORM.

Each text detector is a plain function on one lead's values; `flag_column` applies one to a whole
batch, evaluating each distinct value once (names, titles and domains repeat a lot).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

# A conservative list of well-known throw-away mailbox providers.
DISPOSABLE_DOMAINS = frozenset(
    [
        "10minutemail.com",
        "10minutemail.net",
        "20minutemail.com",
        "33mail.com",
        "anonbox.net",
        "burnermail.io",
        "discard.email",
        "dispostable.com",
        "dropmail.me",
        "emailondeck.com",
        "fakeinbox.com",
        "getairmail.com",
        "getnada.com",
        "guerrillamail.biz",
        "guerrillamail.com",
        "guerrillamail.de",
        "guerrillamail.info",
        "guerrillamail.net",
        "guerrillamail.org",
        "guerrillamailblock.com",
        "harakirimail.com",
        "incognitomail.org",
        "inboxkitten.com",
        "jetable.org",
        "mail-temp.com",
        "mailcatch.com",
        "maildrop.cc",
        "mailinator.com",
        "mailinator.net",
        "mailnesia.com",
        "mailpoof.com",
        "mintemail.com",
        "moakt.com",
        "mohmal.com",
        "mytemp.email",
        "mytrashmail.com",
        "nada.email",
        "sharklasers.com",
        "spam4.me",
        "spambog.com",
        "spamgourmet.com",
        "spamex.com",
        "temp-mail.io",
        "temp-mail.org",
        "tempail.com",
        "tempinbox.com",
        "tempmail.dev",
        "tempmail.net",
        "tempmailo.com",
        "tempr.email",
        "throwawaymail.com",
        "trash-mail.com",
        "trashmail.com",
        "trashmail.de",
        "trashmail.net",
        "wegwerfmail.de",
        "yopmail.com",
        "yopmail.fr",
        "yopmail.net",
    ]
)

# Placeholder names people type to get past a form.
PLACEHOLDER_NAMES = frozenset(
    [
        "test",
        "tester",
        "testing",
        "asdf",
        "asd",
        "qwe",
        "qwerty",
        "abc",
        "abcd",
        "xxx",
        "xx",
        "x",
        "aaa",
        "none",
        "na",
        "n/a",
        "null",
        "nil",
        "fake",
        "foo",
        "bar",
        "foobar",
        "nobody",
        "anonymous",
        "anon",
        "user",
        "sample",
        "demo",
        "dummy",
        "no",
        "name",
        "noname",
        "lol",
    ]
)
ROLE_MAILBOXES = frozenset(
    [
        "info",
        "admin",
        "office",
        "sales",
        "contact",
        "hello",
        "support",
        "team",
        "mail",
        "noreply",
        "no-reply",
        "webmaster",
        "marketing",
        "billing",
        "accounts",
        "hr",
        "jobs",
        "careers",
        "enquiries",
        "inquiries",
        "service",
    ]
)
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "qwertzuiop", "azertyuiop", "1234567890")
_VOWELS = set("aeiouyäöüéèáàíóúâêîôûåæøœ")
_TRANSLITERATE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa"})
_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


PARTICLES = frozenset(
    {"van", "von", "de", "der", "den", "da", "di", "du", "la", "le", "del", "dos", "bin", "al"}
)


def name_not_capitalised(first_name: str, last_name: str) -> bool:
    """A name typed all in lower case ("john smith"), or SHOUTED ("JOHN SMITH")."""
    parts = [p for p in (first_name.strip(), last_name.strip()) if p and p[0].isalpha()]
    if not parts:
        return False
    for part in parts:
        # Particles like "van" or "de" are written in lower case on purpose ("van Beethoven").
        words = [w for w in part.split() if w.lower() not in PARTICLES] or part.split()
        if words[0][0].islower():
            return True
    joined = "".join(parts)
    return len(joined) > 3 and joined.isupper()


def _keyboard_pattern() -> re.Pattern[str]:
    # Runs of 5 along a keyboard row (either direction), plus the classic 4-key mashes. Shorter or
    # other runs hit real names: "Liberty" holds "erty", "Hertz" holds "ertz".
    grams = {"asdf", "fdsa", "qwer", "rewq", "zxcv", "vcxz", "hjkl", "lkjh", "sdfg", "dfgh", "fghj", "ghjk"}
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890"):
        for text in (row, row[::-1]):
            grams.update(text[i : i + 5] for i in range(len(text) - 4))
    consonants = "bcdfghjklmnpqrstvwxz"
    return re.compile(
        r"(\w)\1\1\1"  # four of the same in a row never happens in a name
        + "|"
        + "|".join(sorted(grams))
        + f"|[{consonants}]{{6,}}"  # six consonants in a row
        + r"|\b(\w)(\w)(?:\2\3){2,}\b"  # "ababab"
    )


KEYBOARD_MASH = _keyboard_pattern()


def keyboard_mash(text: str) -> bool:
    """Text that is a run along the keyboard ("asdfgh"), one repeated character ("aaaa", "jjjjj"),
    or a long run of consonants ("xkcdqwrt")."""
    lowered = text.lower() if text.isascii() else _strip_accents(text.lower())
    return KEYBOARD_MASH.search(lowered) is not None


def disposable_email(email: str) -> bool:
    """An address at a throw-away mailbox provider (or a subdomain of one)."""
    domain = email.rpartition("@")[2].strip().lower()
    if not domain:
        return False
    parts = domain.split(".")
    return any(".".join(parts[i:]) in DISPOSABLE_DOMAINS for i in range(len(parts) - 1))


def placeholder_name(first_name: str, last_name: str) -> bool:
    """A name people type to get past a form: "Test Test", "asdf", "n/a"."""
    first = _strip_accents(first_name.strip().lower())
    last = _strip_accents(last_name.strip().lower())
    return first in PLACEHOLDER_NAMES or last in PLACEHOLDER_NAMES or bool(first and first == last)


def email_name_mismatch(email: str, first_name: str, last_name: str) -> bool:
    """A placeholder name ("Test Test", "asdf"), or an email shaped like someone else's name
    (jane.doe@… for "Max Power")."""
    if placeholder_name(first_name, last_name):
        return True
    raw_names = [first_name.strip().lower(), last_name.strip().lower()]
    first, last = (_strip_accents(n) for n in raw_names)
    names = [n for n in (first, last) if n]
    local = email.partition("@")[0].lower()
    if not local or not names or local in ROLE_MAILBOXES:
        return False
    # Fast path for the common case: the address carries the first or last name.
    if (len(first) >= 3 and first[:3] in local) or (len(last) >= 3 and last[:3] in local):
        return False
    local = _strip_accents(local)
    tokens = [t for t in re.split(r"[._\-+]", local) if t]
    alpha = [re.sub(r"\d", "", t) for t in tokens]
    alpha = [t for t in alpha if t]
    if any(t in PLACEHOLDER_NAMES for t in alpha) and local.rstrip("0123456789") in PLACEHOLDER_NAMES:
        return True
    # Only judge addresses shaped like "first.last" (two name-like words); jsmith42 is fine.
    if len(alpha) < 2 or any(len(t) < 2 for t in alpha):
        return False
    # "Müller" may write mueller@ or muller@: both spellings count.
    spellings = names + [n.translate(_TRANSLITERATE) for n in raw_names if n]
    name_tokens = {w for n in spellings for w in re.split(r"[\s\-']+", n) if w}

    def matches(token: str) -> bool:
        return any(w.startswith(token) or token.startswith(w) for w in name_tokens)

    return not any(matches(t) for t in alpha)


SMALL_BATCH = 64
_SEPARATOR = re.compile(r"[._\-+]")
TextDetector = Callable[..., bool]
TEXT_DETECTORS: dict[str, tuple[TextDetector, tuple[str, ...]]] = {
    "name_not_capitalised": (name_not_capitalised, ("first_name", "last_name")),
    # Judged column by column (see flag_column): each column has few distinct values.
    "keyboard_mash": (
        lambda *texts: any(keyboard_mash(t) for t in texts),
        ("first_name", "last_name", "company_name"),
    ),
    "disposable_email": (disposable_email, ("email",)),
    "email_name_mismatch": (email_name_mismatch, ("email", "first_name", "last_name")),
}
# Detectors that look at interactions: kinds whose presence flags the lead.
COUNT_DETECTORS: dict[str, tuple[int, ...]] = {
    "failed_captcha": (20,),  # InteractionKind.CAPTCHA_FAILED
    "unsubscribe_bounce": (7, 8),  # EMAIL_BOUNCE, UNSUBSCRIBE
}


def _factorize(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def flag_column(detector: str, columns: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean per lead for a text detector, given its input columns (object arrays of str).

    Each distinct value (or combination of values) is judged once: names, titles and domains
    repeat a lot, which turns a million calls into a few thousand.
    """
    func, _ = TEXT_DETECTORS[detector]
    if not columns or len(columns[0]) == 0:
        return np.zeros(0, dtype=bool)
    if len(columns[0]) <= SMALL_BATCH:  # factorizing costs more than it saves for a few leads
        return np.fromiter((func(*values) for values in zip(*columns, strict=True)), dtype=bool)
    if detector == "keyboard_mash":
        flags = np.zeros(len(columns[0]), dtype=bool)
        for column in columns:
            codes, uniques = _factorize(column)
            flags |= np.fromiter((keyboard_mash(str(u)) for u in uniques), dtype=bool, count=len(uniques))[
                codes
            ]
        return flags
    if detector == "disposable_email":
        domains = np.array([str(e).rpartition("@")[2] for e in columns[0]], dtype=object)
        codes, uniques = _factorize(domains)
        return np.fromiter((disposable_email("@" + u) for u in uniques), dtype=bool, count=len(uniques))[
            codes
        ]
    if detector == "email_name_mismatch":
        emails, firsts, lasts = columns
        flags = _judge_distinct(placeholder_name, [firsts, lasts])
        # Only a local part with a separator ("jane.doe") or a placeholder word ("test12") can
        # contradict the name; the full check runs on those alone.
        locals_ = [str(e).partition("@")[0].lower() for e in emails]
        for i, local in enumerate(locals_):
            if not flags[i] and (_SEPARATOR.search(local) or local.rstrip("0123456789") in PLACEHOLDER_NAMES):
                flags[i] = email_name_mismatch(str(emails[i]), str(firsts[i]), str(lasts[i]))
        return flags
    return _judge_distinct(func, columns)


def _judge_distinct(func: TextDetector, columns: Sequence[np.ndarray]) -> np.ndarray:
    """func on each distinct combination of the columns' values, spread back to every row."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    factorized = [_factorize(c) for c in columns]
    for codes, uniques in factorized:
        key = key * max(len(uniques), 1) + codes
    distinct, first_index, inverse = np.unique(key, return_index=True, return_inverse=True)
    flags = np.fromiter(
        (func(*(str(u[c[i]]) for c, u in factorized)) for i in first_index.tolist()),
        dtype=bool,
        count=len(distinct),
    )
    return flags[inverse]
