"""Real processes for the end-to-end tests: a controller, workers, a writer.

Everything here runs as subprocesses (the controller through
`controller.py`, workers through `statesync worker`), talks to them over gRPC
with the public `Client`, and reads worker replicas offline with
`statesync replica dump`. Waiting is always polling against a deadline.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from statesync.client import Client
from statesync.core.errors import UnavailableError

HERE = Path(__file__).resolve().parent
CONTROLLER = HERE / "controller.py"
CLI = [sys.executable, "-m", "statesync.cli.main"]

POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = POLL_S
) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (UnavailableError, OSError, ValueError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}"
                + (f" (last error: {last_exc})" if last_exc else "")
            )
        time.sleep(interval)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Proc:
    """A subprocess with its stderr/stdout in a log file (one file per run)."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log_path = workdir / f"{name}.0.log"

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self.log_path = self.workdir / f"{self.name}.{self.runs}.log"
        self.runs += 1
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if env is None else {**os.environ, **env},
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, run: int | None = None) -> str:
        path = self.log_path if run is None else self.workdir / f"{self.name}.{run}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def all_logs(self) -> str:
        return "".join(self.log(i) for i in range(self.runs))

    def wait_log(self, pattern: str, timeout: float, run: int | None = None) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            if run is None and not self.running:
                raise AssertionError(
                    f"{self.name} exited ({self.proc and self.proc.returncode}) while waiting "
                    f"for {pattern!r}:\n{self.log()[-3000:]}"
                )
            return regex.search(self.log(run))

        return wait_until(found, timeout, f"{self.name} to log {pattern!r}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} did not exit {timeout} s after SIGTERM") from None

    def cleanup(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


class ControllerProc(Proc):
    def __init__(self, workdir: Path, settings: dict[str, Any] | None = None) -> None:
        super().__init__("controller", workdir)
        self.data = workdir / "controller-data"
        self.settings = settings or {}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ready_file = workdir / "controller.ready"
        self.http_port = 0

    def start(self, timeout: float = 30, env: dict[str, str] | None = None) -> ControllerProc:
        """Start it (`env`: extra environment variables for this run)."""
        self.ready_file.unlink(missing_ok=True)
        argv = [
            sys.executable,
            str(CONTROLLER),
            "--data",
            str(self.data),
            "--listen",
            self.address,
            "--settings",
            json.dumps(self.settings),
            "--ready-file",
            str(self.ready_file),
        ]
        deadline = time.monotonic() + timeout
        while True:
            self._spawn(argv, env)

            def ready() -> bool:
                if not self.running:
                    return True
                return self.ready_file.exists()

            wait_until(ready, max(1.0, deadline - time.monotonic()), "the controller to start")
            if self.running:
                break
            # The port may still be held by the previous process' socket: try again.
            assert time.monotonic() < deadline, f"controller failed to start:\n{self.log()}"
            time.sleep(0.2)
        info = json.loads(self.ready_file.read_text())
        assert info["grpc"] == self.port and info["pid"] == self.pid
        self.http_port = info["http"]
        return self

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.address, timeout=timeout)

    def rss_kb(self) -> int:
        return rss_kb(self.pid)


class WorkerProc(Proc):
    def __init__(
        self,
        workdir: Path,
        worker_id: str,
        namespaces: Sequence[str],
        server: str,
        *,
        exec_cmd: str | None = None,
        heartbeat: float = 0.5,
        stale_after: float = 5.0,
        deltas: bool = False,
    ) -> None:
        super().__init__(worker_id, workdir)
        self.deltas = deltas
        self.worker_id = worker_id
        self.namespaces = tuple(namespaces)
        self.server = server
        self.state_dir = workdir / f"{worker_id}-state"
        self.exec_cmd = exec_cmd
        self.heartbeat = heartbeat
        self.stale_after = stale_after

    def argv(self) -> list[str]:
        argv = [
            *CLI,
            "worker",
            "--server",
            self.server,
            "--id",
            self.worker_id,
            "--ns",
            ",".join(self.namespaces),
            "--state-dir",
            str(self.state_dir),
            "--heartbeat",
            str(self.heartbeat),
            "--stale-after",
            str(self.stale_after),
        ]
        if self.exec_cmd:
            argv += ["--exec", self.exec_cmd]
        if self.deltas:
            argv.append("--deltas")
        return argv

    def start(self) -> WorkerProc:
        self._spawn(self.argv())
        return self

    def wait_connected(self, timeout: float = 30) -> int:
        """Wait for this run's "connected ... at revision N"; return N."""
        m = self.wait_log(r"connected to \S+ at revision (\d+)", timeout)
        return int(m.group(1))

    def dump(self) -> dict[str, Any]:
        out = subprocess.run(
            [*CLI, "replica", "dump", "--state-dir", str(self.state_dir)],
            capture_output=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        return orjson.loads(out.stdout)


# ------------------------------------------------------------------ state checks


def controller_state(client: Client, namespaces: Iterable[str]) -> dict[str, dict[str, Any]]:
    return {
        ns: {r.key: orjson.loads(r.value) for r in client.range(ns, page_size=1000)}
        for ns in namespaces
    }


def worker_view(status: Any, worker_id: str) -> Any:
    for w in status.workers:
        if w.worker_id == worker_id:
            return w
    return None


def wait_converged(client: Client, worker_ids: Iterable[str], timeout: float = 60) -> Any:
    """Until every worker is connected, ACKed the head and its digests agree."""
    ids = list(worker_ids)

    def converged() -> Any:
        status = client.status()
        for wid in ids:
            w = worker_view(status, wid)
            if w is None or not w.connected:
                return None
            if w.applied_rev != status.head_rev or w.digest != "agree":
                return None
        return status

    try:
        return wait_until(converged, timeout, f"workers {ids} to converge")
    except AssertionError:
        status = client.status()
        summary = [
            (w.worker_id, w.connected, w.applied_rev, w.digest, w.state) for w in status.workers
        ]
        raise AssertionError(f"not converged at head {status.head_rev}: {summary}") from None


def assert_replica_equals(client: Client, worker: WorkerProc, head_rev: int) -> dict[str, Any]:
    """The worker's persisted replica holds exactly the controller's state for its namespaces."""
    expected = controller_state(client, worker.namespaces)

    def caught_up() -> dict[str, Any] | None:
        dump = worker.dump()
        return dump if dump["applied_rev"] >= head_rev else None

    dump = wait_until(caught_up, 30, f"{worker.worker_id}'s replica to reach {head_rev}")
    assert dump["applied_rev"] == head_rev
    assert dump["worker_id"] == worker.worker_id
    assert set(dump["namespaces"]) <= set(worker.namespaces), "foreign namespace in replica"
    for ns in worker.namespaces:
        got = dump["namespaces"].get(ns, {})
        want = expected[ns]
        missing = sorted(want.keys() - got.keys())[:5]
        extra = sorted(got.keys() - want.keys())[:5]
        wrong = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])[:5]
        assert got == want, (
            f"{worker.worker_id} namespace {ns}: missing {missing}, extra {extra}, wrong {wrong}"
        )
    return dump


# ------------------------------------------------------------------ the writer


@dataclass(frozen=True, slots=True)
class Ack:
    index: int
    rev: int
    command_id: str
    ns: str
    key: str
    op: str  # put, patch, delete
    value: Any  # the key's value after this write (None: deleted)
    replayed: bool
    arg: Any = None  # what was sent: the put value or the patch
    at: float = 0.0  # time.monotonic() when the acknowledgement arrived

    def resend(self, client: Client) -> Any:
        """Commit the same command again (same command_id and content)."""
        if self.op == "put":
            return client.put(self.ns, self.key, self.arg, command_id=self.command_id)
        if self.op == "patch":
            return client.patch(self.ns, self.key, self.arg, command_id=self.command_id)
        return client.delete(self.ns, self.key, command_id=self.command_id)


class Writer(threading.Thread):
    """Commits `count` single-op writes (put / patch / delete) one at a time,
    retrying `UnavailableError` with the same command_id until acknowledged."""

    def __init__(
        self,
        address: str,
        namespaces: Sequence[str],
        count: int,
        *,
        keys_per_ns: int = 100,
        rate: float | None = None,
        seed: int = 1,
        pad: int = 40,
        give_up_s: float = 90.0,
        prefix: str = "w",
        on_ack: Callable[[Ack], None] | None = None,
        model: dict[tuple[str, str], Any] | None = None,
    ) -> None:
        """`model`: the keys' values so far, shared with an earlier writer to continue it."""
        super().__init__(name=f"writer-{prefix}", daemon=True)
        self.address = address
        self.namespaces = list(namespaces)
        self.count = count
        self.keys_per_ns = keys_per_ns
        self.rate = rate  # writes per second; None: as fast as possible
        self.seed = seed
        self.pad = pad
        self.give_up_s = give_up_s
        self.prefix = prefix
        self.on_ack = on_ack
        self.acks: list[Ack] = []
        self.model: dict[tuple[str, str], Any] = {} if model is None else model
        self.retries = 0
        self.errors: list[BaseException] = []
        self.paused = threading.Event()
        self.stop_flag = threading.Event()
        self.rng = random.Random(seed)
        self.done = 0
        self.started_at = 0.0

    def next_op(self, i: int) -> tuple[str, str, str, Any]:
        ns = self.rng.choice(self.namespaces)
        key = f"k{self.rng.randrange(self.keys_per_ns):04d}"
        current = self.model.get((ns, key))
        roll = self.rng.random()
        if current is not None and roll < 0.25:
            return ns, key, "patch", [{"op": "add", "path": "/p", "value": i}]
        if current is not None and roll < 0.40:
            return ns, key, "delete", None
        return (
            ns,
            key,
            "put",
            {"i": i, "ns": ns, "key": key, "pad": "x" * self.rng.randrange(self.pad)},
        )

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.errors.append(exc)

    def _run(self) -> None:
        client = Client(self.address, timeout=10)
        self.started_at = time.monotonic()
        try:
            for i in range(self.count):
                if self.stop_flag.is_set():
                    return
                while self.paused.is_set():
                    time.sleep(0.01)
                if self.rate:
                    lag = self.started_at + i / self.rate - time.monotonic()
                    if lag > 0:
                        time.sleep(lag)
                ns, key, op, arg = self.next_op(i)
                command_id = f"{self.prefix}-{self.seed}-{i}"
                deadline = time.monotonic() + self.give_up_s
                while True:
                    try:
                        if op == "put":
                            committed = client.put(ns, key, arg, command_id=command_id)
                        elif op == "patch":
                            committed = client.patch(ns, key, arg, command_id=command_id)
                        else:
                            committed = client.delete(ns, key, command_id=command_id)
                        break
                    except UnavailableError:
                        self.retries += 1
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
                if op == "put":
                    value = arg
                elif op == "patch":
                    value = dict(self.model[(ns, key)], p=i)
                else:
                    value = None
                if value is None:
                    self.model.pop((ns, key), None)
                else:
                    self.model[(ns, key)] = value
                assert committed.command_id == command_id
                ack = Ack(
                    i, committed.rev, command_id, ns, key, op, value, committed.replayed, arg,
                    time.monotonic(),
                )  # fmt: skip
                self.acks.append(ack)
                self.done = i + 1
                if self.on_ack is not None:
                    self.on_ack(ack)
        finally:
            client.close()

    def join_ok(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"writer still running after {timeout} s ({self.done} done)"
        if self.errors:
            raise self.errors[0]

    def wait_done(self, n: int, timeout: float) -> None:
        def reached() -> bool:
            if self.errors:
                raise self.errors[0]
            return self.done >= n or not self.is_alive()

        wait_until(reached, timeout, f"the writer to reach {n} writes (at {self.done})")

    def expected(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {ns: {} for ns in self.namespaces}
        for (ns, key), value in self.model.items():
            out[ns][key] = value
        return out


def assert_acks_present(client: Client, *writers: Writer) -> None:
    """Every acknowledged write is there: revisions strictly increase, and the
    controller's state is exactly the writers' model (the last acknowledged
    write of every key). Writers given in order, sharing one model."""
    revs = [a.rev for w in writers for a in w.acks]
    assert revs == sorted(revs) and len(set(revs)) == len(revs), "acked revisions not increasing"
    last = writers[-1]
    state = controller_state(client, last.namespaces)
    expected = last.expected()
    for ns in last.namespaces:
        lost = sorted(expected[ns].keys() - state[ns].keys())[:5]
        wrong = sorted(
            k for k in expected[ns].keys() & state[ns].keys() if expected[ns][k] != state[ns][k]
        )
        assert state[ns] == expected[ns], (
            f"namespace {ns}: acknowledged writes lost {lost} or altered {wrong[:5]}"
        )


# ------------------------------------------------------------------ a cluster


class Cluster:
    """The processes of one test; `cleanup()` kills whatever is left."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.controller: ControllerProc | None = None
        self.workers: dict[str, WorkerProc] = {}

    def start_controller(self, settings: dict[str, Any] | None = None) -> ControllerProc:
        self.controller = ControllerProc(self.workdir, settings).start()
        return self.controller

    def start_worker(self, worker_id: str, namespaces: Sequence[str], **kw: Any) -> WorkerProc:
        assert self.controller is not None
        worker = WorkerProc(self.workdir, worker_id, namespaces, self.controller.address, **kw)
        self.workers[worker_id] = worker
        return worker.start()

    def cleanup(self) -> None:
        procs: list[Proc] = list(self.workers.values())
        if self.controller is not None:
            procs.append(self.controller)
        for proc in procs:
            proc.cleanup()
        for proc in procs:  # shown by pytest when the test failed
            print(f"===== {proc.name} (last run) =====\n{proc.log()[-4000:]}")
