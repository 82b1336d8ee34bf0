from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from leadcrm.permissions import is_manager


def roles(request: HttpRequest) -> dict[str, Any]:
    """Expose `is_manager` to every template (navigation shows reports to managers only)."""
    user = getattr(request, "user", None)
    return {"is_manager": bool(user and is_manager(user))}
