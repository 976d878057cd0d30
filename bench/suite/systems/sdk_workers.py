"""statesync's controller with Go or Rust SDK workers as the watchers and the
bootstrapping reader: the same `statesync serve` as `Statesync`, another
worker SDK.

Each worker is the SDK's example program (go/cmd/statesync-go-worker,
crates/worker/examples/worker.rs) run as a subprocess of an agent with
`--events`: it prints a JSON line when its applied revision advances
(`{"applied_rev": N, "t": UNIX}`) and, with `changes`, one per change
(`{"rev", "ns", "key", "op", "t"}`), stamped by the worker when the revision
is applied, so latency is read on the same clock as every other system's.
The programs are built once per run (`build`), before the rounds."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import orjson

from bench._controller import rss_mb
from bench.suite.systems.base import Joined, Listing, OnEvent, Watch
from bench.suite.systems.statesync_sys import NAMESPACE, Statesync, StatesyncConn

ROOT = Path(__file__).resolve().parents[3]
READY_KEY = "watch-ready"
"""Written when a watch starts on an empty namespace, so that "at the head"
means the worker has connected and applied something."""


class SdkWorkerProcess:
    """One worker program with `--events`, its stdout followed on the agent's loop."""

    def __init__(self, argv: list[str], log: Path, on_change: Callable[[dict[str, Any]], None]):
        self.argv = argv
        self.log = log
        self.on_change = on_change
        self.applied_rev = 0
        self.applied_at = 0.0
        """When the worker applied `applied_rev` (unix time, its clock)."""
        self.proc: asyncio.subprocess.Process | None = None
        self._advanced = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        self._reader = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise RuntimeError(f"{self.argv[0]}: not a JSON line: {line[:200]!r}") from None
            if "applied_rev" in event:
                self.applied_rev = event["applied_rev"]
                self.applied_at = event["t"]
                self._advanced.set()
            else:
                self.on_change(event)
        self._advanced.set()  # the program exited: wake a waiter to say so

    async def until_applied(self, rev: int, timeout: float = 600) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            self._advanced.clear()  # before the check: nothing sets it in between
            if self.applied_rev >= rev:
                return
            if self.proc.returncode is not None or (self._reader and self._reader.done()):
                raise RuntimeError(
                    f"{self.argv[0]} stopped (exit {self.proc.returncode}) at revision "
                    f"{self.applied_rev}, not {rev}:\n{self.log_tail()}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"worker at {self.applied_rev}, not {rev}, after {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), min(left, 0.5))

    async def start_until_applied(self, rev: int) -> None:
        """Start, and return once `rev` is applied; stopped if it does not get there."""
        await self.start()
        try:
            await self.until_applied(rev)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            raise

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        return rss_mb(self.proc.pid)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def stop(self) -> None:
        """SIGTERM; a worker that does not exit 0 is an error of the run."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise RuntimeError(f"{self.argv[0]} did not stop within 60 s of SIGTERM") from None
        if self._reader is not None:
            await self._reader
        if code != 0:
            raise RuntimeError(f"{self.argv[0]} exited {code}:\n{self.log_tail()}")


class ProcessWatch(Watch):
    def __init__(self, worker: SdkWorkerProcess) -> None:
        self.worker = worker

    async def close(self) -> None:
        await self.worker.stop()


class SdkWorkerConn(StatesyncConn):
    """statesync's client for writes; watches and bootstraps are worker programs."""

    sdk: ClassVar[str]

    def __init__(self, address: str, exe: str, scratch: str) -> None:
        super().__init__(address)
        self.exe = exe
        self.scratch = Path(scratch)

    @abc.abstractmethod
    def argv(self, worker_id: str, state_dir: Path | None, events: str) -> list[str]:
        """The program's command line; no state_dir: an in-memory replica."""

    @abc.abstractmethod
    def replica_keys(self, state_dir: Path) -> int:
        """How many keys of the namespace the stopped worker's replica holds."""

    def _worker(
        self, state_dir: Path | None, events: str, on_change: Callable[[dict[str, Any]], None]
    ) -> SdkWorkerProcess:
        worker_id = f"bench-{self.sdk}-{uuid.uuid4().hex[:12]}"
        log = self.scratch / f"{worker_id}.log"
        return SdkWorkerProcess(self.argv(worker_id, state_dir, events), log, on_change)

    async def watch(self, on_event: OnEvent, *, from_revision: int) -> Watch:
        """A worker program with an in-memory replica that starts from a snapshot,
        as `StatesyncConn.watch`; returns once it is at the head. Changes count
        after `from_revision`."""
        head = await self.head()
        if head == 0:
            head = await self.put(READY_KEY, b"{}")

        def changed(event: dict[str, Any]) -> None:
            if event["rev"] > from_revision and event["key"] != READY_KEY:
                value = None if event["op"] == "delete" else b""
                on_event(event["key"], value, event["rev"], at=event["t"])

        worker = self._worker(None, "changes", changed)
        await worker.start_until_applied(head)
        return ProcessWatch(worker)

    async def join(self, head: int) -> Joined:
        """A worker program with an in-memory replica until it has applied
        `head`; it does not say how many snapshots it took: None."""
        worker = self._worker(None, "revs", lambda _: None)
        await worker.start_until_applied(head)
        return Joined(worker.applied_at, None, None, None, ProcessWatch(worker))

    async def bootstrap(self, state_dir: Path) -> tuple[float, Listing, int]:
        """A fresh worker program with an on-disk replica until it has applied the
        head (process start included). The programs count no bytes: None."""
        head = await self.head()
        t0 = time.perf_counter()
        worker = self._worker(state_dir, "revs", lambda _: None)
        await worker.start()
        try:
            await worker.until_applied(head)
            seconds = time.perf_counter() - t0
            self.reader_rss = (0.0, worker.peak_rss_mb())
        finally:
            await worker.stop()
        listing = Listing(items={}, revision=head, wire_bytes=None, round_trips=1)
        return seconds, listing, self.replica_keys(state_dir)


class GoWorkerConn(SdkWorkerConn):
    sdk = "go"

    def argv(self, worker_id: str, state_dir: Path | None, events: str) -> list[str]:
        argv = [self.exe, "-target", self.address, "-id", worker_id, "-ns", NAMESPACE]
        argv += ["-events", events]
        return argv + ([] if state_dir is None else ["-dir", str(state_dir)])

    def replica_keys(self, state_dir: Path) -> int:
        dump = subprocess.run(
            [self.exe, "-dump", "-dir", str(state_dir)], capture_output=True, check=True
        )
        return len(orjson.loads(dump.stdout)["namespaces"].get(NAMESPACE, {}))


class RustWorkerConn(SdkWorkerConn):
    sdk = "rust"

    def argv(self, worker_id: str, state_dir: Path | None, events: str) -> list[str]:
        argv = [self.exe, "--address", f"http://{self.address}", "--worker-id", worker_id]
        argv += ["--namespace", NAMESPACE, "--events", events]
        return argv + ([] if state_dir is None else ["--data-dir", str(state_dir)])

    def replica_keys(self, state_dir: Path) -> int:
        # SQLite, the Python worker's format (crates/worker/src/replica).
        db = sqlite3.connect(f"file:{state_dir / 'replica.sqlite'}?mode=ro", uri=True)
        try:
            [(count,)] = db.execute("SELECT count(*) FROM kv WHERE ns = ?", (NAMESPACE,))
        finally:
            db.close()
        return int(count)


class SdkWorkerSystem(Statesync):
    """`statesync serve`, watched and bootstrapped by another SDK's worker program."""

    conn_class: ClassVar[type[SdkWorkerConn]]
    worker_exe: ClassVar[str] = ""
    """Set by `build` in the harness's process; agents get it through `endpoint()`."""

    def endpoint(self) -> dict[str, Any]:
        if not self.worker_exe:
            raise RuntimeError(f"{self.name}: the worker program was not built (call build())")
        return {**super().endpoint(), "exe": self.worker_exe, "scratch": str(self.workdir)}

    @classmethod
    async def connect(cls, endpoint: dict[str, Any]) -> SdkWorkerConn:  # type: ignore[override]
        return cls.conn_class(endpoint["address"], endpoint["exe"], endpoint["scratch"])

    @classmethod
    @abc.abstractmethod
    def build(cls, out: Path) -> str:
        """Build the worker program once; says how it was built."""


def _run(argv: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    built = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1800)
    if built.returncode != 0:
        raise RuntimeError(f"building {what} failed ({' '.join(argv)}):\n{built.stderr[-4000:]}")
    return built


class StatesyncGo(SdkWorkerSystem):
    name = "statesync-go"
    label = "statesync (embedded SQLite store), Go SDK workers"
    client = (
        "statesync gRPC API through grpcio.aio for writes; watches and the bootstrapping "
        "reader are Go SDK workers (go/cmd/statesync-go-worker; watches keep the replica "
        "in memory, the bootstrap in bbolt on disk)"
    )
    conn_class = GoWorkerConn

    @classmethod
    def build(cls, out: Path) -> str:
        go = shutil.which("go")
        if go is None:
            raise RuntimeError("statesync-go needs a Go toolchain (go) to build its worker")
        exe = out / "statesync-go-worker"
        _run(
            [go, "build", "-o", str(exe), "./cmd/statesync-go-worker"], ROOT / "go", "the Go worker"
        )
        version = _run([go, "version"], ROOT, "go version").stdout.strip()
        cls.worker_exe = str(exe)
        return f"`go build ./cmd/statesync-go-worker` (default flags: optimized), {version}"


class StatesyncRust(SdkWorkerSystem):
    name = "statesync-rust"
    label = "statesync (embedded SQLite store), Rust SDK workers"
    client = (
        "statesync gRPC API through grpcio.aio for writes; watches and the bootstrapping "
        "reader are Rust SDK workers (crates/worker/examples/worker.rs; watches keep the "
        "replica in memory, the bootstrap on disk)"
    )
    conn_class = RustWorkerConn

    @classmethod
    def build(cls, out: Path) -> str:
        cargo = shutil.which("cargo")
        if cargo is None:
            raise RuntimeError("statesync-rust needs a Rust toolchain (cargo) to build its worker")
        argv = [cargo, "build", "--release", "--locked", "-p", "statesync-worker"]
        argv += ["--example", "worker", "--message-format", "json-render-diagnostics"]
        built = _run(argv, ROOT, "the Rust worker")
        for line in built.stdout.splitlines():
            message = json.loads(line)
            target = message.get("target", {})
            example = target.get("name") == "worker" and "example" in target.get("kind", ())
            if message.get("reason") == "compiler-artifact" and example and message["executable"]:
                cls.worker_exe = message["executable"]
                break
        else:
            raise RuntimeError(f"cargo built no worker example:\n{built.stderr[-3000:]}")
        rustc = _run(["rustc", "--version"], ROOT, "rustc --version").stdout.strip()
        return f"`cargo {' '.join(argv[1:8])}` (the workspace's release profile), {rustc}"
