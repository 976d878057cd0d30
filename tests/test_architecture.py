"""The architecture is enforced, not just drawn: layers, lint and the public API."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import statesync

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is a test dependency"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    """Python files (and the README's Python blocks) are as `ruff format` writes them."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    """The package passes `mypy --strict` ([tool.mypy] in pyproject.toml)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_api_is_pinned() -> None:
    assert sorted(statesync.__all__) == sorted(
        [
            "Change",
            "ChangeOp",
            "Command",
            "Committed",
            "Compare",
            "Delete",
            "KeyRecord",
            "Limits",
            "Patch",
            "Put",
            "SetContract",
            "SQLiteStore",
            "Store",
            "StoreSettings",
            "CommandIdReusedError",
            "CompactedError",
            "ConflictError",
            "FailedCompare",
            "FutureRevisionError",
            "IncompatibleSchemaError",
            "InvalidCommandError",
            "InvalidInputError",
            "InvalidKeyError",
            "InvalidNamespaceError",
            "InvalidPatchError",
            "InvalidSchemaError",
            "InvalidTranslationError",
            "InvalidValueError",
            "MergeConflictError",
            "NoTranslationPathError",
            "NotFoundError",
            "ProtocolError",
            "RemoteError",
            "SchemaViolation",
            "SchemaViolationError",
            "StatesyncError",
            "StoreClosedError",
            "StoreCorruptError",
            "StoreError",
            "StoreFailedError",
            "StoreInUseError",
            "UnavailableError",
            "ValueTooLargeError",
        ]
    )
    for name in statesync.__all__:
        assert getattr(statesync, name).__module__.startswith("statesync.")


def test_sqlite_store_implements_the_protocol(tmp_path: Path) -> None:
    with statesync.SQLiteStore(tmp_path / "s.sqlite") as store:
        assert isinstance(store, statesync.Store)
