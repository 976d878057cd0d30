"""docs/errors.md is the error contract: its table must match statesync/core/errors.py.

Every error class is listed once, with its parent, gRPC status, retryability, CLI exit code
and the `detail` fields its constructor takes; every listed code is a class.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from statesync.core import errors
from statesync.core.errors import StatesyncError

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def _classes() -> dict[str, type[StatesyncError]]:
    out = {}
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, StatesyncError):
            out[name] = cls
    return out


def _table() -> dict[str, dict[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `(\w+)` \|", line)
        if not match:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 7, f"docs/errors.md: malformed row {line!r}"
        code, parent, status, retryable, exit_code, fields, action = cells
        assert match.group(1) not in rows, f"docs/errors.md lists {code} twice"
        rows[match.group(1)] = {
            "parent": parent,
            "status": status,
            "retryable": retryable,
            "exit": exit_code,
            "fields": fields,
            "action": action,
        }
    return rows


CLASSES = _classes()
TABLE = _table()


def test_every_error_class_is_listed_and_every_row_is_a_class() -> None:
    assert sorted(TABLE) == sorted(CLASSES)


def _fields(cell: str) -> set[str]:
    cell = re.sub(r"\[[^\]]*\]", "", cell)  # the members of list fields
    return {f.strip() for f in cell.split(",")} - {"—", ""}


def _constructor_fields(cls: type[StatesyncError]) -> set[str]:
    if "__init__" not in vars(cls):
        return set()
    names = set(inspect.signature(cls.__init__).parameters) - {"self", "message"}
    return names


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_row_matches_the_class(name: str) -> None:
    cls, row = CLASSES[name], TABLE[name]
    assert row["status"] == cls.grpc_status, f"{name}: gRPC status"
    assert row["exit"] == str(cls.exit_code), f"{name}: exit code"
    assert row["retryable"] == ("yes" if cls.retryable else "no"), f"{name}: retryable"
    parent = cls.__bases__[0].__name__ if cls is not StatesyncError else "—"
    assert row["parent"] == parent, f"{name}: parent"
    assert _fields(row["fields"]) == _constructor_fields(cls), f"{name}: detail fields"
    assert row["action"], f"{name}: what a client should do"
