"""The CLI as a user runs it: real processes, exit codes, stdout JSON, stderr messages.

This module also holds the helpers the other CLI test modules share: starting
`statesync serve` as a subprocess on free ports and running CLI commands
against it. Here: help, the controller's lifecycle (ready file, graceful
shutdown, store or address in use), the server address options, the offline
log commands and the demo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from statesync.cli.main import build_parser

CLI = [sys.executable, "-m", "statesync.cli.main"]
ENV = {k: v for k, v in os.environ.items() if k not in ("STATESYNC_SERVER", "STATESYNC_DATA")} | {
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "200",
}
START_TIMEOUT_S = 30.0


@dataclass
class Server:
    """A `statesync serve` subprocess on free ports."""

    process: subprocess.Popen[bytes]
    data: Path
    stderr_path: Path
    ready_file: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.info['grpc']}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.info['http']}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> str:
        """SIGTERM; the server must exit 0 after a graceful shutdown. Returns its log."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            pytest.fail(f"the server ignored SIGTERM for 30 s:\n{self.stderr()}")
        log = self.stderr()
        assert code == 0, log
        assert "shutting down" in log and "stopped at revision" in log, log
        return log


def spawn_server(data: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    data.mkdir(parents=True, exist_ok=True)
    ready = data.parent / f"{data.name}.ready.json"
    stderr_path = data.parent / f"{data.name}.stderr.log"
    args = [
        *CLI,
        "serve",
        "--data",
        str(data),
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--ready-file",
        str(ready),
        *extra,
    ]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, env=ENV)
    return process, ready, stderr_path


def start_server(data: Path, *extra: str) -> Server:
    """Start `statesync serve` and wait (polling, with a deadline) for its ready file."""
    process, ready, stderr_path = spawn_server(data, *extra)
    server = Server(process, data, stderr_path, ready)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        if process.poll() is not None:
            pytest.fail(f"statesync serve exited {process.returncode}:\n{server.stderr()}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            pytest.fail(f"statesync serve not ready after {START_TIMEOUT_S} s:\n{server.stderr()}")
        time.sleep(0.02)
    server.info = json.loads(ready.read_text())
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("server") / "data")
    yield s
    s.stop()


def cli(
    address: str | None,
    *args: str,
    stdin: str | bytes | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `statesync ARGS` with $STATESYNC_SERVER set to `address`."""
    run_env = dict(ENV if env is None else env)
    if address is not None:
        run_env["STATESYNC_SERVER"] = address
    return subprocess.run(
        [*CLI, *args],
        input=stdin.decode() if isinstance(stdin, bytes) else stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env,
    )


def cli_many(
    address: str | None, *commands: Sequence[str], timeout: float = 30
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands concurrently (a CLI process mostly spends its time
    starting up); results in the order given."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: cli(address, *args, timeout=timeout), commands))


def ok(address: str | None, *args: str, stdin: str | None = None) -> str:
    result = cli(address, *args, stdin=stdin)
    assert result.returncode == 0, f"statesync {' '.join(args)}: {result.stderr}"
    return result.stdout


def ok_json(address: str | None, *args: str, stdin: str | None = None) -> Any:
    return json.loads(ok(address, *args, stdin=stdin))


# ---------------------------------------------------------------- help


def test_help_teaches() -> None:
    result = cli(None, "--help")
    assert result.returncode == 0
    out = result.stdout
    assert "examples:" in out and "exit codes:" in out
    for code in range(9):
        assert f"\n  {code}  " in out, code
    assert "not every worker applied it before the timeout" in out
    assert "STATESYNC_SERVER" in out


def test_every_command_has_a_description_and_examples() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in (
        "serve",
        "put",
        "patch",
        "del",
        "get",
        "list",
        "watch",
        "status",
        "load",
        "snapshot",
        "compact",
        "demo",
    ):
        sub = commands[name]
        assert sub.description, name
        assert sub.epilog and "examples:" in sub.epilog and f"statesync {name}" in sub.epilog, name
    log = commands["log"]._subparsers._group_actions[0].choices
    for name in ("show", "verify"):
        description = " ".join(log[name].description.split())
        assert "stop the controller first" in description and "exit 5" in description
    assert "worker" in commands, "worker_cmd.add_parsers is called"


def test_server_option_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--server", "h:1", "get", "a", "b"]).server == "h:1"
    assert parser.parse_args(["get", "--server", "h:2", "a", "b"]).server == "h:2"
    assert (
        parser.parse_args(["--server", "h:1", "put", "a", "b", "1", "--server", "h:3"]).server
        == "h:3"
    )
    assert parser.parse_args(["status"]).server is None


# ---------------------------------------------------------------- the controller's lifecycle


def test_serve_lifecycle_store_and_address_in_use_and_offline_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    assert server.info["pid"] == server.process.pid
    assert isinstance(server.info["grpc"], int) and isinstance(server.info["http"], int)
    assert "serving" in server.stderr()
    try:
        # The address, from each place it can come from.
        for result in cli_many(
            None,  # no $STATESYNC_SERVER
            ("--server", server.address, "put", "routes", "web", '{"w": 1}'),
            ("put", "--server", server.address, "routes", "api", '{"w": 2}'),
        ):
            assert result.returncode == 0, result.stderr
        assert ok_json(server.address, "del", "routes", "api")["rev"] == 3  # $STATESYNC_SERVER

        # Concurrently: a second controller on the same data (the store is in use),
        # others on a busy gRPC or HTTP address, the offline log on the live store,
        # and the offline log where there is no store.
        http_address = server.http.removeprefix("http://")
        same_data, busy_grpc, busy_http, live, nothing = cli_many(
            None,
            ("serve", "--data", str(data), "--listen", "127.0.0.1:0", "--http", "none"),
            ("serve", "--data", str(tmp_path / "o1"), "--listen", server.address, "--http", "none"),
            (
                "serve",
                "--data",
                str(tmp_path / "o2"),
                "--listen",
                "127.0.0.1:0",
                "--http",
                http_address,
            ),
            ("log", "verify", "--data", str(data)),
            ("log", "show", "--data", str(tmp_path / "nothing")),
        )
        assert same_data.returncode == 5, same_data.stderr
        assert same_data.stderr.startswith("statesync: error:")
        assert "in use by another process" in same_data.stderr
        for busy, address in ((busy_grpc, server.address), (busy_http, http_address)):
            assert busy.returncode == 5, busy.stderr
            assert f"statesync: error: cannot listen on {address}" in busy.stderr
        assert live.returncode == 5 and "in use by another process" in live.stderr
        assert "stop it first" in live.stderr
        assert nothing.returncode == 4 and "no statesync store" in nothing.stderr
        assert not (tmp_path / "nothing").exists()
    finally:
        log = server.stop()
    assert "stopped at revision 3" in log
    assert not server.ready_file.exists(), "the ready file is removed on shutdown"

    # Stopped: the offline log commands work (--data before or after the command).
    # One after the other: each takes the store's exclusive lock.
    show = cli(None, "log", "show", "--data", str(data))
    verify = cli(None, "--data", str(data), "log", "verify")
    changes = [json.loads(line) for line in show.stdout.splitlines()]
    assert sorted((c["rev"], c["key"], c["op"]) for c in changes[:2]) in (
        [(1, "web", "put"), (2, "api", "put")],
        [(1, "api", "put"), (2, "web", "put")],
    )
    assert (changes[2]["rev"], changes[2]["key"], changes[2]["op"]) == (3, "api", "delete")
    assert len(changes) == 3
    verified = json.loads(verify.stdout)
    assert verified["ok"] and verified["changes_verified"] == 3


def test_demo_runs() -> None:
    result = cli(None, "demo", timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "replayed=True" in out
    assert "compare-and-swap on a stale revision is refused" in out
    assert "I-JSON" in out and "compacted" in out
    assert "the controller stopped" in out


# ---------------------------------------------------------------- regressions (found here)


def test_a_second_controller_cannot_share_a_port(tmp_path: Path) -> None:
    import asyncio

    from statesync.server.app import Controller, ServerSettings

    async def scenario() -> None:
        first = Controller(ServerSettings(data=tmp_path / "a", listen="127.0.0.1:0", http=None))
        await first.start()
        try:
            busy = f"127.0.0.1:{first.port}"
            second = Controller(ServerSettings(data=tmp_path / "b", listen=busy, http=None))
            try:
                with pytest.raises((OSError, RuntimeError)):
                    await second.start()
            finally:
                await second.stop()
        finally:
            await first.stop()

    asyncio.run(scenario())


def test_server_option_before_the_worker_command() -> None:
    args = build_parser().parse_args(
        ["--server", "h:1", "worker", "--id", "w", "--ns", "a", "--state-dir", "d"]
    )
    assert args.server == "h:1"
