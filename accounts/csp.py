"""Per-view Content-Security-Policy exceptions, for pages whose HTML we do not write."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache, wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import get_template
from drf_spectacular.views import SpectacularSwaggerSplitView

SWAGGER_TEMPLATE = "drf_spectacular/swagger_ui.html"


@cache
def swagger_style_hash() -> str:
    """The CSP hash of the one inline <style> in drf-spectacular's Swagger UI page (read from the
    installed template, so an upgrade that changes it stays allowed and nothing else is)."""
    source = get_template(SWAGGER_TEMPLATE).template.source  # type: ignore[attr-defined]
    match = re.search(r"<style>(.*?)</style>", source, re.S)
    if match is None:
        return "'none'"  # the template has no inline style any more: allow none
    digest = hashlib.sha256(match.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def api_docs_view(**initkwargs: Any) -> Any:
    """The Swagger UI page under the global policy, plus only what it needs.

    The "split" view loads its start-up script from a URL of ours ('self') instead of inline, so
    no script exception is needed; its inline <style> is allowed by hash; Swagger UI shows data:
    images and fonts in its CSS.
    """
    view = SpectacularSwaggerSplitView.as_view(**initkwargs)

    @wraps(view)
    def docs(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response._csp_update = {"style-src": [swagger_style_hash()]}  # type: ignore[attr-defined]
        return response

    return docs
