"""Storage faults in a real controller process, through an LD_PRELOAD shim
(tests/faults/failfs.c) that fails fsync with EIO, or writes with ENOSPC, on the
controller's data files while a trigger file exists.

- fsync fails under load: nothing acknowledged is lost after a restart; every
  later write gets StoreFailedError (the outcome is unknown, so the store stops
  acknowledging until it is restarted, even once fsync works again); /readyz
  says why; retrying the failed writes with their command ids after the
  restart is safe (each either was committed, and is replayed, or commits now).
- the disk is full: writes fail with a storage error (exit 7 on the CLI),
  nothing acknowledged is lost, and the controller serves again as soon as
  space is freed, without a restart.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import Cluster, ControllerProc, wait_until

from statesync.client import Client
from statesync.core.errors import StoreError, StoreFailedError, UnavailableError

SHIM_SOURCE = Path(__file__).resolve().parents[1] / "faults" / "failfs.c"


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler builds the storage fault shim"
    out = tmp_path_factory.mktemp("shim") / "failfs.so"
    build = [cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(SHIM_SOURCE), "-ldl"]
    subprocess.run(build, check=True)
    return out


def faulty_env(shim: Path, controller: ControllerProc, workdir: Path) -> dict[str, str]:
    return {
        "LD_PRELOAD": str(shim),
        "FAILFS_PREFIX": str(controller.data),
        "FAILFS_FSYNC": str(workdir / "fail-fsync"),
        "FAILFS_FULL": str(workdir / "disk-full"),
    }


def readyz(controller: ControllerProc) -> tuple[int, str]:
    url = f"http://127.0.0.1:{controller.http_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Load(threading.Thread):
    """Puts unique keys (`w-<i>` = i) as fast as answers come, each with its own
    command id, recording what was acknowledged and what failed and how."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.acked: dict[int, int] = {}  # i -> revision
        self.failed: dict[int, BaseException] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with Client(self.address, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                try:
                    self.acked[i] = client.put("load", f"w-{i}", i, command_id=f"load-{i}").rev
                except (StoreError, UnavailableError) as exc:
                    self.failed[i] = exc
                i += 1


def test_failed_fsync_stops_acknowledgements_until_restart(
    cluster: Cluster, tmp_path: Path, shim: Path
) -> None:
    controller = cluster.controller = ControllerProc(tmp_path)
    controller.start(env=faulty_env(shim, controller, tmp_path))
    load = Load(controller.address)
    load.start()
    wait_until(lambda: len(load.acked) >= 200, 60, "200 acknowledged writes")
    (tmp_path / "fail-fsync").touch()
    wait_until(lambda: len(load.failed) >= 20, 60, "writes to fail after fsync fails")
    (tmp_path / "fail-fsync").unlink()  # fsync works again: the store must not believe it
    failed_before = len(load.failed)
    wait_until(lambda: len(load.failed) >= failed_before + 20, 60, "more failed writes")
    load.stop.set()
    load.join(30)
    first_failure = min(load.failed)
    assert all(i < first_failure for i in load.acked), "a write was acknowledged after a failure"
    assert all(isinstance(e, StoreFailedError) for e in load.failed.values()), {
        type(e).__name__ for e in load.failed.values()
    }
    status, body = readyz(controller)
    assert status == 503 and "durability is unknown" in body, (status, body)
    with controller.client() as client:  # reads still work
        assert client.get("load", "w-0") is not None

    controller.kill()
    controller.start()  # no shim: a healthy disk
    assert readyz(controller)[0] == 200
    with controller.client() as client:
        for i, rev in load.acked.items():
            record = client.get("load", f"w-{i}")
            assert record is not None and record.mod_rev == rev and record.json() == i, i
        # The failed writes' outcome was unknown; retrying each with its id is safe.
        for i in sorted(load.failed):
            committed = client.put("load", f"w-{i}", i, command_id=f"load-{i}")
            assert client.get("load", f"w-{i}").json() == i  # type: ignore[union-attr]
            assert committed.rev > 0
        chain = client.status()
        assert chain.head_rev >= len(load.acked) + len(load.failed)


def cli(controller: ControllerProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statesync.cli.main", "--server", controller.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_full_disk_refuses_writes_and_serves_again_when_space_is_freed(
    cluster: Cluster, tmp_path: Path, shim: Path
) -> None:
    controller = cluster.controller = ControllerProc(tmp_path)
    controller.start(env=faulty_env(shim, controller, tmp_path))
    acked: dict[str, Any] = {}
    with controller.client() as client:
        for i in range(50):
            client.put("cfg", f"k{i}", {"i": i})
            acked[f"k{i}"] = {"i": i}
        (tmp_path / "disk-full").touch()
        with pytest.raises(StoreError, match="disk is full"):
            client.put("cfg", "big", {"pad": "x" * 10_000}, command_id="big-1")
        refused = cli(controller, "put", "cfg", "big", '{"pad": 1}')
        assert refused.returncode == 7, refused.stderr
        assert "disk is full" in refused.stderr
        (tmp_path / "disk-full").unlink()
        # Space is back: the same command id commits, no restart needed.
        committed = client.put("cfg", "big", {"pad": "x" * 10_000}, command_id="big-1")
        assert not committed.replayed
        assert cli(controller, "put", "cfg", "after", "1").returncode == 0
        for key, value in acked.items():
            assert client.get("cfg", key).json() == value  # type: ignore[union-attr]
    assert readyz(controller)[0] == 200
