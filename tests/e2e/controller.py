"""Run a controller with test settings (short heartbeats, small buffers).

    python tests/e2e/controller.py --data DIR --listen 127.0.0.1:PORT \
        --settings '{"sync": {"heartbeat_s": 0.5}, "feed_revisions": 200}' --ready-file F

`--settings` is JSON: "sync" holds SyncSettings fields, every other key is a
ServerSettings field. Once serving, the ready file receives
{"grpc": port, "http": port, "pid": pid}, written atomically.
Logs go to stderr; SIGTERM/SIGINT shut down gracefully (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

from statesync.server.app import Controller, ServerSettings, SyncSettings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--ready-file", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    extra = json.loads(args.settings)
    sync = SyncSettings(**extra.pop("sync", {}))
    settings = ServerSettings(
        data=args.data, listen=args.listen, http="127.0.0.1:0", sync=sync, **extra
    )
    args.data.mkdir(parents=True, exist_ok=True)

    def ready(controller: Controller) -> None:
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(
            json.dumps({"grpc": controller.port, "http": controller.http_port, "pid": os.getpid()})
        )
        os.replace(tmp, args.ready_file)

    asyncio.run(Controller(settings).run(on_ready=ready))
    logging.getLogger("statesync.server").info("controller process exiting")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
