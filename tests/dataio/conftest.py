from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path: Path) -> Iterator[None]:
    """Uploaded files go to a temporary MEDIA_ROOT, never into the work tree."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return
