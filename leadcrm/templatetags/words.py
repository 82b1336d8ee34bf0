"""`as_words`: a stored value as words ("wedding cakes, catering"), never a Python repr."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

register = template.Library()


@register.filter
def as_words(value: Any) -> str:
    """Lists and tuples joined with commas, mappings as "key: value"; None as nothing."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {as_words(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(as_words(v) for v in value if v not in (None, ""))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
