"""What every system under test provides to the scenarios.

A `System` runs the server side (its own processes, its own data directory,
loopback ports) and says what it promises. A `Conn` is one client connection,
made from `System.endpoint()` (a plain dict, so that a child process can
connect too: `connect(spec, endpoint)`).

Keys are bare names ("k-0000001"); each system maps them into its own
namespace (statesync namespace "bench", etcd prefix "bench/", NATS KV bucket
"bench"). Values are bytes (a 100-byte JSON document).
"""

from __future__ import annotations

import abc
import importlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class OnEvent(Protocol):
    """Called by a watch for each change applied: (key, value or None for a delete,
    revision); `at` is the unix time it was applied where the applier is another
    process that said so (None: now)."""

    def __call__(
        self, key: str, value: bytes | None, rev: int, *, at: float | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Listing:
    """A whole-namespace read: what a peer's user does to (re)build a replica."""

    items: dict[str, bytes]
    revision: int
    """The revision (etcd) or stream sequence (NATS) the listing is consistent at."""
    wire_bytes: int | None
    """Bytes received for it: protobuf sizes of the responses (gRPC), or the
    client's inbound byte counter (NATS); None where the reader does not count
    them (the Go and Rust worker programs). HTTP/2 framing is not counted."""
    round_trips: int


@dataclass
class Joined:
    """A new, empty reader that reached the head (the cold storm)."""

    at: float
    """Unix time it was at the head."""
    keys: int | None
    """Keys it holds (None: the reader does not say)."""
    transfers: int | None
    """Full-state transfers it received: snapshots installed, or listings."""
    reconnects: int | None
    held: Watch | dict[str, bytes]
    """What it built (a running worker, or the listing), kept until every
    reader of the storm is at the head, as a fleet would keep it."""


class Watch(abc.ABC):
    """A running watch; survives a server restart (resumes where it was)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class Conn(abc.ABC):
    @abc.abstractmethod
    async def put(self, key: str, value: bytes) -> int:
        """One write, acknowledged with the system's default durability; its revision."""

    @abc.abstractmethod
    async def put_window(self, items: list[tuple[str, bytes]], window: int) -> list[float]:
        """Pipelined writes on this one connection: up to `window` outstanding,
        each acknowledged individually. The latency of each (seconds), in order."""

    async def put_batches(self, batches: list[list[tuple[str, bytes]]], window: int) -> list[float]:
        """Atomic multi-key writes, one command or transaction per batch, up to
        `window` outstanding; each batch's latency. NotImplementedError where the
        system has no atomic multi-key write (NATS KV)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def load(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Bulk-load (setup, not measured) the fastest way the system offers; the head after."""

    @abc.abstractmethod
    async def list_all(self) -> Listing:
        """Every key of the namespace, consistent at one revision, the way a
        careful user of the system re-lists (paginated where the system wants that)."""

    async def join(self, head: int) -> Joined:
        """A new, empty reader reaching `head` the way the system's users build
        a replica: peers re-list."""
        listing = await self.list_all()
        return Joined(time.time(), len(listing.items), 1, 0, listing.items)

    @abc.abstractmethod
    async def watch(self, on_event: OnEvent, *, from_revision: int) -> Watch:
        """Deliver every change after `from_revision` (0: from now on) to on_event."""

    @abc.abstractmethod
    async def head(self) -> int:
        """The current revision / last stream sequence."""

    @abc.abstractmethod
    async def compact(self) -> None:
        """Drop history up to the head, where the system has such a thing."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class System(abc.ABC):
    name: str
    """Short id for tables and the command line: statesync, etcd, nats, nats-sync, nats-r3."""
    label: str
    durability: str
    """One sentence: what an acknowledged write survives, in this configuration."""
    client: str
    """Which client library and API drives it."""
    bootstraps_a_worker = False
    """Bootstrap: a fresh worker of the system's own SDK (`Conn.bootstrap`)
    rather than a re-list (`Conn.list_all`)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server(s) on a fresh data directory under workdir; return when ready."""

    @abc.abstractmethod
    def restart(self) -> None:
        """Stop gracefully (SIGTERM) and start again on the same data; return when ready."""

    @abc.abstractmethod
    def stop(self) -> None:
        """SIGTERM, wait; raise if a server did not exit cleanly."""

    @abc.abstractmethod
    def server_pids(self) -> list[int]: ...

    @abc.abstractmethod
    def endpoint(self) -> dict[str, Any]:
        """Picklable: what `connect` needs (addresses, names)."""

    @classmethod
    @abc.abstractmethod
    async def connect(cls, endpoint: dict[str, Any]) -> Conn: ...

    def spec(self) -> str:
        """`module:Class`, so a child process can import the class."""
        return f"{type(self).__module__}:{type(self).__qualname__}"


def system_class(spec: str) -> type[System]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


async def connect(spec: str, endpoint: dict[str, Any]) -> Conn:
    return await system_class(spec).connect(endpoint)
