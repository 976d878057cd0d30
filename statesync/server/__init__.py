"""The controller: the process, the control-plane gRPC service and HTTP.

`app.Controller` runs the process around the native data plane (commits,
reads and worker streams); `service` answers the control-plane RPCs it
proxies; `metrics` exposes what both count; `heap` tunes how the process's
C heap returns freed memory (for `statesync serve`).
"""

from statesync.server.app import Controller, ServerSettings, SyncSettings

__all__ = ["Controller", "ServerSettings", "SyncSettings"]
