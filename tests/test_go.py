"""The Go SDK (go/) is held to its own tools: gofmt-clean, go vet-clean, its
tests (the conformance vectors among them) pass, and its generated wire code
matches the proto.

These run the go command in go/, so `python -m pytest` remains the one command
that tests everything."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GO_DIR = ROOT / "go"


def go(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("go")
    assert exe, "a Go toolchain (go) is needed to build and test the Go SDK"
    return subprocess.run(
        [exe, *args], cwd=GO_DIR, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_gofmt() -> None:
    exe = shutil.which("gofmt")
    assert exe, "gofmt is part of the Go toolchain"
    result = subprocess.run(
        [exe, "-l", "."], cwd=GO_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", f"not gofmt-formatted:\n{result.stdout}"


@pytest.mark.timeout(1300)
def test_go_vet() -> None:
    result = go("vet", "./...")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(1300)
def test_go_test() -> None:
    result = go("test", "-count=1", "./...")
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    assert "FAIL" not in result.stdout
    # Every package with tests ran them (a package without tests says so).
    for package in (
        "canonical",
        "digest",
        "changelog",
        "patch",
        "schema",
        "translate",
        "client",
        "worker",
    ):
        assert f"statesync/go/{package}\t" in result.stdout, result.stdout


@pytest.mark.timeout(1300)
def test_go_race_detector() -> None:
    """The packages with goroutines (the worker loop, the client) under -race."""
    result = go("test", "-race", "-count=1", "./worker", "./client")
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    assert "DATA RACE" not in result.stdout + result.stderr


@pytest.mark.timeout(1300)
def test_generated_go_code_matches_the_proto(tmp_path: Path) -> None:
    """Regenerate into a temporary directory with go/generate.py and compare bytes,
    ignoring the protoc version line (a newer grpcio-tools is not a stale proto)."""
    spec = importlib.util.spec_from_file_location("go_generate", GO_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.generate(tmp_path)

    def code(path: Path) -> list[str]:
        protoc_version = ("// \tprotoc ", "// - protoc ")
        return [
            line for line in path.read_text().splitlines() if not line.startswith(protoc_version)
        ]

    for name in ("statesync.pb.go", "statesync_grpc.pb.go"):
        fresh = tmp_path / "statesyncv1" / name
        assert fresh.exists(), f"go/generate.py did not write {name}"
        assert code(fresh) == code(GO_DIR / "statesyncv1" / name), (
            f"go/statesyncv1/{name} is stale: run `python go/generate.py` and commit"
        )


def test_e2e_go_drift_is_gofmt_and_vet_clean() -> None:
    """tests/e2e/go_drift, the chaos test's Go program (its own module on go/'s
    worker package), is held to the same tools."""
    drift_dir = ROOT / "tests" / "e2e" / "go_drift"
    gofmt, go_exe = shutil.which("gofmt"), shutil.which("go")
    assert gofmt and go_exe, "a Go toolchain (go, gofmt) is needed"
    formatted = subprocess.run(
        [gofmt, "-l", "."], cwd=drift_dir, capture_output=True, text=True, timeout=120, check=False
    )
    assert formatted.returncode == 0 and formatted.stdout == "", formatted.stdout + formatted.stderr
    vet = subprocess.run(
        [go_exe, "vet", "./..."],
        cwd=drift_dir,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert vet.returncode == 0, vet.stdout + vet.stderr
