"""`manage.py import_leads`: summary, per-row errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from leadcrm.models import Lead

pytestmark = pytest.mark.django_db


def write(tmp_path: Path, text: str | bytes, name: str = "leads.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def test_dry_run_prints_what_would_happen_and_writes_nothing(tmp_path: Path, capsys) -> None:
    call_command(
        "import_leads",
        write(tmp_path, "email,name\na@example.com,Ann\n"),
        "--dry-run",
        "--map",
        "name=first_name",
    )
    out = capsys.readouterr().out
    assert "name → first_name" in out
    assert "1 would be created" in out
    assert "dry run" in out
    assert Lead.objects.count() == 0


def test_refused_rows_are_listed_and_the_command_exits_1(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, "email,country\na@example.com,DE\nbad,DE\nc@example.com,Germany\n")
    with pytest.raises(CommandError) as error:
        call_command("import_leads", path)
    assert error.value.returncode == 1
    out = capsys.readouterr().out
    assert "line 3: email" in out
    assert "line 4: country" in out
    assert "1 were created" in out
    assert Lead.objects.count() == 1


def test_a_bad_file_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no rows of data"):
        call_command("import_leads", write(tmp_path, "email\n"))
    with pytest.raises(CommandError, match="NUL"):
        call_command("import_leads", write(tmp_path, b"email\na\x00@example.com\n"))


def test_a_bad_map_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no column 'mail'"):
        call_command("import_leads", write(tmp_path, "email\na@example.com\n"), "--map", "mail=email")


def test_it_runs_as_a_process_with_exit_status(tmp_path: Path) -> None:
    """The exit status a shell sees (CommandError → 1) for 3 bad rows among good ones."""
    import subprocess
    import sys

    from django.conf import settings

    path = write(tmp_path, "email\nok@example.com\nbad\n")
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k in ("DATABASE_URL", "REDIS_URL", "HOME")})
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    done = subprocess.run(
        [sys.executable, "manage.py", "import_leads", path, "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(Path(__file__).resolve().parents[2]),
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "line 3: email" in done.stdout
