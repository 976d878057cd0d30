"""The worker SDK: a local replica kept exactly in step with the controller.

    from statesync.worker import Worker

    with Worker("127.0.0.1:7700", worker_id="w1", namespaces=["routes"],
                state_dir="./w1-state") as worker:
        worker.wait_for(rev)
        print(worker.get("routes", "web"))

Never imports the server: workers only see the wire contract.
"""

from statesync.worker.replica import Replica, ReplicaCorruptError, read_offline
from statesync.worker.worker import ChangeEvent, Reject, Worker, WorkerSettings

__all__ = [
    "ChangeEvent",
    "Reject",
    "Replica",
    "ReplicaCorruptError",
    "Worker",
    "WorkerSettings",
    "read_offline",
]
