"""A real controller on a free port, on a background event loop, for tests."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from statesync.server.app import Controller, ServerSettings, SyncSettings

__all__ = ["FAST", "RunningController"]

FAST = SyncSettings(heartbeat_s=0.2, silence_s=3.0, window=64)
"""Short heartbeats and silences, so tests see liveness decisions quickly."""


class RunningController:
    """`Controller` on 127.0.0.1:0 in a thread; `address` is where to connect."""

    def __init__(self, data: Path, **overrides: object) -> None:
        settings: dict[str, object] = {
            "data": data,
            "listen": "127.0.0.1:0",
            "http": None,
            "sync": FAST,
        }
        # The overrides are ServerSettings fields given by keyword; a wrong one is a TypeError.
        self.settings = ServerSettings(**(settings | overrides))  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.controller = Controller(self.settings)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.controller.start(), self.loop).result(30)
        self.address = f"127.0.0.1:{self.controller.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.controller.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
