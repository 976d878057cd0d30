"""`statesync demo`: a short guided tour, against a controller run in-process.

The controller gets a temporary data directory and a free port; its asyncio
loop runs in a background thread while the tour uses the blocking `Client`,
exactly as any other program would.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

from rich.console import Console

from statesync.client import Client
from statesync.core.commands import Command, Put
from statesync.core.errors import CompactedError, ConflictError, InvalidValueError
from statesync.server.app import Controller, ServerSettings

__all__ = ["run_demo"]


class _BackgroundController:
    """A Controller on its own event loop thread; `with` starts and stops it."""

    def __init__(self, data: Path) -> None:
        self.controller = Controller(ServerSettings(data=data, listen="127.0.0.1:0", http=None))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="demo-controller", daemon=True
        )

    def __enter__(self) -> Controller:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.controller.start(), self.loop).result(30)
        return self.controller

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.controller.stop(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


def run_demo() -> int:
    console = Console(soft_wrap=True)
    say = console.print
    with (
        tempfile.TemporaryDirectory(prefix="statesync-demo-") as tmp,
        _BackgroundController(Path(tmp)) as controller,
        Client(f"127.0.0.1:{controller.port}") as client,
    ):
        say(
            f"[bold]statesync demo[/]: a controller on 127.0.0.1:{controller.port}, data in {tmp}\n"
        )
        deploy = Command(
            [
                Put("routes", "web", {"upstream": "10.0.0.1:8080", "weight": 5}),
                Put("routes", "api", {"upstream": "10.0.0.2:9090", "weight": 1}),
            ],
            command_id="deploy-1",
        )
        c = client.commit(deploy)
        say(f"1. one command, two keys, committed durably at revision [bold]{c.rev}[/]")
        again = client.commit(deploy)
        say(
            f"2. the same command_id again returns revision {again.rev} "
            f"(replayed={again.replayed}) and writes nothing"
        )
        c = client.patch("routes", "web", [{"op": "replace", "path": "/weight", "value": 7}])
        web = client.get("routes", "web")
        say(f"3. a JSON Patch sets web's weight at revision {c.rev}: {web and web.json()}")
        try:
            client.put("routes", "web", {"weight": 0}, expect_rev=1)
        except ConflictError as exc:
            say(f"4. a compare-and-swap on a stale revision is refused: [yellow]{exc}[/]")
        try:
            client.put("routes", "bad", {"ids": [1, 2**60]})
        except InvalidValueError as exc:
            say(f"5. the controller keeps values in the I-JSON domain: [yellow]{exc}[/]")
        old = client.get("routes", "web", rev=1)
        say(f"6. history: web at revision 1 was {old and old.json()}")
        client.delete("routes", "api")
        chunks = list(client.snapshot(["routes"]))
        keys = [e.key for chunk in chunks for e in chunk.entries]
        digest = chunks[-1].digests[0].root.hex()[:16]
        say(f"7. a consistent snapshot at revision {chunks[-1].rev}: keys {keys}, digest {digest}…")
        status = client.status()
        client.compact(status.head_rev - 1)
        try:
            client.get("routes", "web", rev=1)
        except CompactedError as exc:
            say(f"8. after compaction, old revisions are gone explicitly: [yellow]{exc}[/]")
        status = client.status()
        say(
            f"9. status: head revision {status.head_rev}, compacted at "
            f"{status.compacted_rev}, {len(status.workers)} workers seen"
        )
    say("\nthe controller stopped. Try it yourself:")
    say("  statesync serve &")
    say("""  statesync put routes web '{"weight": 5}' && statesync watch routes --from-rev 0""")
    return 0
