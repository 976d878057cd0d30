"""The placement example's Python worker: an observer of the whole fleet.

It follows namespace `jobs` (where the Go controller writes
`{"node": ..., "image": ...}` per job) and, after each revision it applies,
prints one line: the revision and the jobs on each node, as JSON:

    rev 9 {"node-a": ["job-1", "job-5"], "node-b": ["job-2", "job-7"]}

Like the Rust workers, it refuses (NACKs) a value that is not a placement and
keeps the last good one.

    python examples/placement/python_worker.py --id observer --state-dir ./observer
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from typing import Any

from statesync.worker import ChangeEvent, Reject, Worker


def check_placement(ns: str, key: str, value: Any) -> None:
    """Raise Reject unless `value` is a placement (a delete, None, always is fine)."""
    if value is None:
        return
    for field in ("node", "image"):
        if not isinstance(value, dict) or not isinstance(value.get(field), str) or not value[field]:
            got = json.dumps(value, separators=(",", ":"), sort_keys=True)
            reason = f'a placement needs a non-empty string "{field}", got {got}'
            print(f"refuse {ns}/{key}: {reason}", flush=True)
            raise Reject(reason)


def by_node(placements: dict[str, Any]) -> dict[str, list[str]]:
    """The jobs on each node, sorted."""
    nodes: dict[str, list[str]] = {}
    for job, placement in sorted(placements.items()):
        nodes.setdefault(placement["node"], []).append(job)
    return dict(sorted(nodes.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Follow the job placements and print the jobs on each node at every revision."
    )
    parser.add_argument("--id", default="observer", help="the worker id (default observer)")
    parser.add_argument("--state-dir", required=True, help="where the replica is kept")
    parser.add_argument("--ns", default="jobs", help="the namespace of the placements")
    parser.add_argument(
        "--server",
        default=os.environ.get("STATESYNC_SERVER", "127.0.0.1:7700"),
        help="the controller's gRPC address (default $STATESYNC_SERVER, else 127.0.0.1:7700)",
    )
    args = parser.parse_args()
    worker = Worker(
        args.server,
        worker_id=args.id,
        namespaces=[args.ns],
        state_dir=args.state_dir,
        validator=check_placement,
    )
    printed = -1

    def summarize(event: ChangeEvent) -> None:
        # Called for each change after its whole revision is applied: one line a revision.
        nonlocal printed
        if event.rev != printed:
            printed = event.rev
            print(f"rev {event.rev} {json.dumps(by_node(worker.list(args.ns)))}", flush=True)

    worker.on_change(summarize)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop_soon)
        await worker.run()

    print(f"{args.id} following {args.ns}, at revision {worker.applied_rev}", flush=True)
    asyncio.run(run())


if __name__ == "__main__":
    main()
