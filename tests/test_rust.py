"""The Rust crates are held to their own tools: formatted, clippy-clean with
warnings as errors, and their tests (the conformance vectors among them) pass.

These run cargo from the workspace root, so `python -m pytest` remains the one
command that tests everything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cargo(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("cargo")
    assert exe, "a Rust toolchain (cargo) is needed to build and test statesync"
    return subprocess.run(
        [exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False
    )


@pytest.mark.timeout(1600)
def test_cargo_fmt() -> None:
    result = cargo("fmt", "--all", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(1600)
def test_cargo_clippy() -> None:
    result = cargo("clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings")
    assert result.returncode == 0, result.stderr[-6000:]


@pytest.mark.timeout(1600)
def test_cargo_test() -> None:
    result = cargo("test", "--workspace", "--locked")
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    assert "test result: FAILED" not in result.stdout
