"""The examples' own checks: the placement controller's Go module (gofmt, vet,
its planner's tests, a --help that teaches) and the Python worker's rule.
The whole scenario runs in tests/test_readme.py; the Rust worker's tests run
with the workspace (tests/test_rust.py)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from statesync.worker import Reject

PLACEMENT = Path(__file__).resolve().parents[1] / "examples" / "placement"
CONTROLLER = PLACEMENT / "controller"


def go(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["go", *args], cwd=CONTROLLER, capture_output=True, text=True, timeout=300
    )


# The first run after a clean checkout downloads and builds the Go modules.
@pytest.mark.timeout(600)
def test_controller_is_gofmt_clean_vetted_and_tested() -> None:
    fmt = subprocess.run(["gofmt", "-l", "."], cwd=CONTROLLER, capture_output=True, text=True)
    assert fmt.returncode == 0 and fmt.stdout == "", fmt.stdout + fmt.stderr
    vet = go("vet", "./...")
    assert vet.returncode == 0, vet.stderr
    tested = go("test", "-count=1", "./...")
    assert tested.returncode == 0 and "ok" in tested.stdout, tested.stdout + tested.stderr


def test_controller_help_teaches(tmp_path: Path) -> None:
    built = go("build", "-o", str(tmp_path / "controller"), ".")
    assert built.returncode == 0, built.stderr

    def controller(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tmp_path / "controller", *args], capture_output=True, text=True, timeout=30
        )

    helped = controller("--help")
    assert helped.returncode == 0, helped.stderr
    for words in ("places jobs on nodes", "mod_rev", "command id", "-rounds", "-every", "-server"):
        assert words in helped.stderr, words
    wrong = controller("--nodes", "node-a")
    assert wrong.returncode == 2 and "at least two --nodes" in wrong.stderr
    unexpected = controller("node-a")
    assert unexpected.returncode == 2 and '"node-a"' in unexpected.stderr


def python_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("python_worker", PLACEMENT / "python_worker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_worker_refuses_what_is_not_a_placement() -> None:
    check = python_worker().check_placement
    check("jobs", "job-1", {"node": "node-a", "image": "redis:7.4"})
    check("jobs", "job-1", None)  # a removal
    for bad in ({"node": "node-c"}, {"node": "", "image": "x"}, [1], "node-a", 3):
        with pytest.raises(Reject, match="a placement needs a non-empty string"):
            check("jobs", "job-1", bad)


def test_python_worker_groups_jobs_by_node() -> None:
    by_node = python_worker().by_node
    placements = {
        "job-2": {"node": "node-b", "image": "x"},
        "job-1": {"node": "node-b", "image": "x"},
        "job-3": {"node": "node-a", "image": "x"},
    }
    assert list(by_node(placements).items()) == [
        ("node-a", ["job-3"]),
        ("node-b", ["job-1", "job-2"]),
    ]
