"""The controller: gRPC and HTTP adapters over the store and the core.

`app.Controller` runs the process; `service` answers RPCs; `sync` runs one
loop per worker stream around the core's `WorkerSession`; `feed` is the
shared, bounded buffer of recent revisions those loops read.
"""

from statesync.server.app import Controller, ServerSettings

__all__ = ["Controller", "ServerSettings"]
