"""The README's tour is documentation that runs: every command in it must succeed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def bash_block(section: str) -> str:
    block = re.search(rf"## {section}.*?```bash\n(.*?)```", README.read_text(), re.S)
    assert block, f"the README's {section!r} section has a bash block"
    return block.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_tour(block: str, cwd: Path) -> dict[str, str]:
    """Run `block` with bash, one command per line; returns each line's stdout."""
    lines = [line for line in block.splitlines() if shlex.split(line, comments=True)]
    assert all(shlex.split(line, comments=True)[0] == "statesync" for line in lines)
    # The tour uses the default addresses; the test moves them to free ports.
    grpc_port, http_port = free_port(), free_port()
    block = block.replace(
        "statesync serve &",
        f"statesync serve --listen 127.0.0.1:{grpc_port} --http 127.0.0.1:{http_port} &",
    )
    bin_dir = cwd / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "statesync"  # exec: background jobs are the statesync processes
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m statesync.cli.main "$@"\n')
    wrapper.chmod(0o755)
    script = (
        "set -euo pipefail\n"
        "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"
        'echo "---"\n'
        + "".join(f"{line}\necho '---'\n" for line in block.splitlines() if line.strip())
    )
    env = {
        **os.environ,
        "STATESYNC_SERVER": f"127.0.0.1:{grpc_port}",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = result.stdout.split("---\n")[1:]
    lines_run = [line for line in block.splitlines() if line.strip()]
    return dict(zip(lines_run, outputs, strict=False))


def test_readme_tour_runs(tmp_path: Path) -> None:
    block = bash_block("A short tour")
    assert len(block.splitlines()) >= 12
    by_line = run_tour(block, tmp_path)
    # The idempotent retry really was replayed at the same revision.
    first, again = (o for line, o in by_line.items() if "deploy-42" in line)
    assert '"replayed":false' in first and '"replayed":true' in again
    assert first.split(",")[0] == again.split(",")[0]
    # Both workers applied the routes write; only edge-2 subscribes to flags.
    routes = next(o for line, o in by_line.items() if "put routes web" in line and "wait" in line)
    assert '"applied":["edge-1","edge-2"]' in routes
    flags = next(o for line, o in by_line.items() if "put flags" in line)
    assert '"applied":["edge-2"]' in flags
    dump = next(o for line, o in by_line.items() if "replica dump" in line)
    assert '"worker_id":"edge-1"' in dump and '"web"' in dump
    assert "dark-mode" in (tmp_path / "edge-2.changes").read_text()
    checks = next(o for line, o in by_line.items() if line.startswith("statesync reconcile"))
    outcomes = {(c["worker"], c["ns"]): c["outcome"] for c in map(json.loads, checks.splitlines())}
    assert outcomes == {
        ("edge-1", "routes"): "no drift",
        ("edge-2", "flags"): "no drift",
        ("edge-2", "routes"): "no drift",
    }
    plan = next(o for line, o in by_line.items() if "rollback" in line).splitlines()
    assert json.loads(plan[-1])["written"] is False
    assert {json.loads(line)["key"] for line in plan[:-1]} == {"api", "web"}


def test_readme_contracts_tour_runs(tmp_path: Path) -> None:
    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    by_line = run_tour(bash_block("Contracts tour"), tmp_path)

    def output(*words: str) -> str:
        return next(o for line, o in by_line.items() if all(w in line for w in words))

    assert "refused: exit 4" in output("o-bad")
    assert "compatible" in output("contract check", "v2") and "INCOMPATIBLE" not in output(
        "contract check", "v2"
    )
    for write in ("o-2", "o-3"):
        assert '"applied":["new","old"]' in output(write)
    old = json.loads(output("dump", "./old"))["namespaces"]["orders"]
    new = json.loads(output("dump", "./new"))["namespaces"]["orders"]
    assert set(old) == set(new) == {"o-1", "o-2", "o-3"}
    assert all("priority" not in value for value in old.values())
    assert {k: v["priority"] for k, v in new.items()} == {
        "o-1": "standard",
        "o-2": "express",
        "o-3": "standard",
    }
    breaking = output("contract check", "v3")
    assert "breaking: exit 1" in breaking and "/required" in breaking
    assert "refused: exit 4" in output("register", "v3")
    assert "payments" in output("schema list")


def test_readme_python_example_runs(tmp_path: Path) -> None:
    code = re.search(
        r"From Python, a writer and a worker.*?```python\n(.*?)```", README.read_text(), re.S
    )
    assert code
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "['w1']" in result.stdout and "{'weight': 5}" in result.stdout
