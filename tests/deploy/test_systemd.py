"""The supervised worker: restarted when it exits, and when its liveness file goes stale."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"


def unit(name: str) -> str:
    return (UNITS / name).read_text()


def liveness_command(alive_file: Path) -> str:
    """The liveness unit's shell command as systemd runs it, with `systemctl` replaced by echo."""
    text = unit("leadcrm-worker-liveness@.service")
    command = re.search(r"ExecStart=/bin/sh -c '(.*?)'\n", text.replace("\\\n", ""), re.S)
    assert command is not None
    script = command.group(1).replace("%%", "\0").replace("%i", "1").replace("\0", "%").replace("$$", "$")
    return script.replace("/run/leadcrm/worker-1.alive", str(alive_file)).replace(
        "systemctl restart", "echo RESTART"
    )


def test_the_worker_unit_restarts_it_and_gives_it_an_alive_file() -> None:
    text = unit("leadcrm-worker@.service")
    assert "Restart=always" in text
    assert "WORKER_ALIVE_FILE=/run/leadcrm/worker-%i.alive" in text
    assert "celery -A config worker" in text
    assert "celery -A config beat" in unit("leadcrm-beat.service")


def test_the_liveness_check_restarts_a_worker_whose_file_is_stale_or_missing(tmp_path: Path) -> None:
    alive = tmp_path / "worker-1.alive"

    def check() -> str:
        return subprocess.run(
            ["/bin/sh", "-c", liveness_command(alive)], capture_output=True, text=True
        ).stdout

    assert "RESTART" in check()  # never started
    alive.touch()
    assert check() == ""  # fresh
    stale = time.time() - 120
    os.utime(alive, (stale, stale))
    assert "RESTART leadcrm-worker@1.service" in check()
