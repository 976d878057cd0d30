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

import pytest

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


def run_scenario(block: str, cwd: Path) -> dict[str, str]:
    """Run the seeds' scenario `block` with bash in `cwd`, a scratch view of the
    checkout (its entries symlinked), so cargo, go and the example paths resolve
    while every file the block writes lands in `cwd`; returns each line's stdout.
    The controller's status is saved as `status.json` before the processes stop."""
    root = README.parent
    for entry in root.iterdir():
        if not entry.name.startswith(".") and entry.name != "target":
            (cwd / entry.name).symlink_to(entry)
    grpc_port, http_port = free_port(), free_port()
    block = block.replace(
        "statesync serve &",
        f"statesync serve --listen 127.0.0.1:{grpc_port} --http 127.0.0.1:{http_port} &",
    )
    bin_dir = cwd / "bin"
    bin_dir.mkdir()
    for name, command in (("statesync", "-m statesync.cli.main"), ("python", "")):
        wrapper = bin_dir / name  # exec: background jobs are the processes themselves
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" {command} "$@"\n')
        wrapper.chmod(0o755)
    lines = [line for line in block.splitlines() if line.strip()]
    script = (
        "set -euo pipefail\n"
        "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"
        'echo "---"\n'
        + "".join(f"{line}\necho '---'\n" for line in lines)
        + "statesync status --json > status.json\n"
    )
    env = {
        **os.environ,
        "STATESYNC_SERVER": f"127.0.0.1:{grpc_port}",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR", str(root / "target")),
        "COLUMNS": "200",  # the status tables, unabridged
    }
    result = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = result.stdout.split("---\n")[1:]
    return dict(zip(lines, outputs, strict=False))


def jobs_by_node(placements: dict[str, str]) -> dict[str, list[str]]:
    nodes: dict[str, list[str]] = {}
    for job, node in sorted(placements.items()):
        nodes.setdefault(node, []).append(job)
    return dict(sorted(nodes.items()))


# From a clean checkout the block's `cargo build` compiles the Rust worker's
# dependencies in the debug profile (minutes on two cores; later runs reuse them).
@pytest.mark.timeout(1000)
def test_readme_seeds_scenario_runs(tmp_path: Path) -> None:
    by_line = run_scenario(bash_block("The seeds' scenario"), tmp_path)
    first, final = map(json.loads, (tmp_path / "placements.json").read_text().splitlines())
    assert len(first["placements"]) == len(final["placements"]) == 6
    assert first["placements"]["job-1"] == "node-a"  # the key the block writes wrong

    # Before the bad write: each node ran exactly its placements.
    listed = next(o for line, o in by_line.items() if line.startswith("ls node-a"))
    for node, jobs in jobs_by_node(first["placements"]).items():
        assert f"{node}/running:\n" + "".join(f"{j}.json\n" for j in jobs) in listed
    observed = next(o for line, o in by_line.items() if "observer.log" in line and "tail" in line)
    assert observed.split(" ", 2)[:2] == ["rev", str(first["rev"])]
    assert json.loads(observed.split(" ", 2)[2]) == jobs_by_node(first["placements"])

    # The bad write: refused by all three, held, and job-1 kept running on node-a.
    nacked = next(o for line, o in by_line.items() if "NACKED" in line)
    assert nacked.count("NACKED") == 3 and nacked.count("jobs/job-1") == 3, nacked
    node_a = (tmp_path / "node-a.log").read_text()
    refused = node_a.index("refuse jobs/job-1 at rev")
    assert "stop job-1" not in node_a[:refused]
    assert "refuse jobs/job-1 at rev" in (tmp_path / "node-b.log").read_text()

    # The end: every worker at the head, digests agreeing, nothing held.
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["head_rev"] == final["rev"]
    workers = {w["worker_id"]: w for w in status["workers"]}
    assert set(workers) == {"node-a", "node-b", "observer"}
    for w in workers.values():
        assert w["connected"] and w["applied_rev"] == final["rev"], w
        assert (w["digest"], w["state"], w["held"]) == ("agree", "TAILING", []), w
    # What each Rust worker acts on is its node's placements, value for value.
    for node in ("node-a", "node-b"):
        running = {
            f.stem: json.loads(f.read_text()) for f in (tmp_path / node / "running").iterdir()
        }
        assert set(running) == {job for job, n in final["placements"].items() if n == node}
        assert all(placement["node"] == node for placement in running.values())
    # The Python worker saw the same.
    last = (tmp_path / "observer.log").read_text().splitlines()[-1].split(" ", 2)
    assert last[:2] == ["rev", str(final["rev"])]
    assert json.loads(last[2]) == jobs_by_node(final["placements"])
