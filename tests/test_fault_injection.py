"""Built-in fault injection: a worker that drops or corrupts changes, on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import cli

from statesync.client import Client
from statesync.testing.controller import RunningController
from statesync.worker import Worker, WorkerSettings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningController]:
    running = RunningController(tmp_path / "controller")
    yield running
    running.stop()


def _digest(client: Client, worker_id: str) -> str:
    return next(w.digest for w in client.status().workers if w.worker_id == worker_id)


@pytest.mark.parametrize("fault", ["chaos_drop", "chaos_corrupt"])
def test_a_faulty_worker_diverges_and_its_digest_shows_it(
    server: RunningController, tmp_path: Path, fault: str
) -> None:
    settings = WorkerSettings(**{fault: 1.0, "chaos_seed": 7})  # type: ignore[arg-type]
    with (
        Client(server.address) as client,
        Worker(
            server.address, worker_id="healthy", namespaces=["app"], state_dir=tmp_path / "h"
        ) as healthy,
        Worker(
            server.address,
            worker_id="faulty",
            namespaces=["app"],
            state_dir=tmp_path / "f",
            settings=settings,
        ) as faulty,
    ):
        assert healthy.wait_for(0, 10) and faulty.wait_for(0, 10)
        rev = client.put("app", "k", {"v": 1}).rev
        client.wait_applied(rev, workers=["healthy", "faulty"], timeout=10)
        assert healthy.get("app", "k") == {"v": 1}
        if fault == "chaos_drop":
            assert faulty.get("app", "k") is None and faulty.chaos.dropped == 1
        else:
            assert faulty.get("app", "k")["statesync_chaos"] == "corrupted"
            assert faulty.chaos.corrupted == 1
        assert faulty.applied_rev == rev  # it claims the revision: only digests tell
        assert _digest(client, "healthy") == "agree"
        assert _digest(client, "faulty") == "differ"


def test_chaos_rates_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chaos_drop"):
        WorkerSettings(chaos_drop=1.5)
    bad = cli(
        None, "worker", "--id", "w", "--ns", "a", "--state-dir", str(tmp_path), "--chaos-drop", "2"
    )
    assert bad.returncode == 4 and "chaos_drop" in bad.stderr
