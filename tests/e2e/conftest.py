"""Fixtures of the end-to-end tests: a per-test cluster of real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture(params=["python", "native"])
def hub(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Controller settings choosing its Sync hub: Python, or native (`--native-sync`)."""
    return {"native_sync": request.param == "native"}
