"""The README's tour is documentation that runs: every command in it must succeed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands() -> list[list[str]]:
    block = re.search(r"## A short tour.*?```bash\n(.*?)```", README.read_text(), re.S)
    assert block, "the README has a bash tour block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "statesync", line
            commands.append(words[1:])
    return commands


def test_readme_tour_runs(tmp_path: Path) -> None:
    commands = tour_commands()
    assert len(commands) >= 10
    env = {**os.environ, "STATESYNC_DATA": str(tmp_path / "statesync-data")}
    outputs = []
    for args in commands:
        result = subprocess.run(
            [sys.executable, "-m", "statesync.cli.main", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"statesync {' '.join(args)}: {result.stderr}"
        outputs.append(result.stdout)
    # The idempotent retry really was replayed at the same revision.
    first, again = (o for a, o in zip(commands, outputs, strict=True) if "deploy-42" in a)
    assert '"replayed":false' in first and '"replayed":true' in again
    assert first.split(",")[0] == again.split(",")[0]


def test_readme_python_example_runs(tmp_path: Path) -> None:
    code = re.search(r"From Python:\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "{'weight': 5}" in result.stdout
