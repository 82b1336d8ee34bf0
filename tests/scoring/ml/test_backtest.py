"""The backtest command: the shared file reaches its targets; bad files get a clear error."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

XEDUCATION = Path(settings.SHARED_DATA_DIR) / "xeducation_leads.csv"
LEAKING = (
    "Tags,Lead Quality,Lead Profile,Asymmetrique Activity Index,Asymmetrique Profile Index,"
    "Asymmetrique Activity Score,Asymmetrique Profile Score,Last Activity,Last Notable Activity"
)


def backtest(*args: str) -> dict:
    out = StringIO()
    call_command("backtest", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.skipif(not XEDUCATION.exists(), reason="shared data set not present")
def test_backtest_on_the_shared_export_reaches_the_target_without_leaking_columns():
    # Full 5-fold CV as the command runs it (about 10 s on 2 cores).
    result = backtest(str(XEDUCATION), "--target", "Converted", "--drop", LEAKING)
    assert set(result) == {"rows", "model", "roc_auc", "pr_auc", "brier", "lift_top_decile", "fit_seconds"}
    assert result["rows"] == 9240
    assert result["roc_auc"] >= 0.875
    assert result["brier"] <= 0.136


def write(tmp_path: Path, text: str, name: str = "leads.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def rows(n: int = 40, sep: str = ",") -> str:
    lines = [sep.join(["id", "source", "visits", "won"])]
    lines += [sep.join([str(i), "web" if i % 3 else "referral", str(i % 7), str(i % 2)]) for i in range(n)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (rows(), ["--target", "converted"], "Target column 'converted' is not in the file"),
        (rows().replace(",1\n", ",0\n"), ["--target", "won"], "only one"),
        ("", ["--target", "won"], "is empty"),
        ("id,source,won\n", ["--target", "won"], "no rows"),
        (rows(sep=";"), ["--target", "won"], "--sep ';'"),
        (rows(), ["--target", "won", "--drop", "nope"], "not in the file: nope"),
        (rows(), ["--target", "won", "--positive", "yes"], "No row has target value 'yes'"),
    ],
)
def test_backtest_refuses_bad_files_with_a_clear_message(tmp_path, content, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace("?", r"\?")):
        call_command("backtest", write(tmp_path, content), *args, stdout=StringIO(), stderr=StringIO())


def test_backtest_exits_non_zero_from_the_command_line(tmp_path, capsys):
    from django.core.management import ManagementUtility

    path = write(tmp_path, rows(sep=";"))
    with pytest.raises(SystemExit) as exit_info:  # what `manage.py backtest` does on a bad file
        ManagementUtility(["manage.py", "backtest", path, "--target", "won"]).execute()
    assert exit_info.value.code == 1
    assert "--sep ';'" in capsys.readouterr().err


def test_backtest_runs_on_a_small_clean_file(tmp_path):
    result = backtest(write(tmp_path, rows(200)), "--target", "won", "--folds", "3")
    assert result["rows"] == 200
    assert 0 <= result["roc_auc"] <= 1
