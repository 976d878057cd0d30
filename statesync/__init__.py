"""statesync: keep a fleet of workers exactly in step with a controller.

The public API: build `Command`s of `Put`/`Patch`/`Delete` ops with optional
`Compare`s (or one `SetContract` to change a namespace's schemas), commit them
to a `Store` (the embedded `SQLiteStore` by default), and read keys, changes,
snapshots and digests back.
"""

from statesync.core.commands import (
    Command,
    Committed,
    Compare,
    Delete,
    Limits,
    Patch,
    Put,
    SetContract,
)
from statesync.core.errors import *  # noqa: F403 - the error tree is public API
from statesync.core.errors import __all__ as _error_names
from statesync.core.model import Change, ChangeOp, KeyRecord
from statesync.store.base import Store, StoreSettings
from statesync.store.sqlite import SQLiteStore

__version__ = "0.1.0"

__all__ = [
    "Change",
    "ChangeOp",
    "Command",
    "Committed",
    "Compare",
    "Delete",
    "KeyRecord",
    "Limits",
    "Patch",
    "Put",
    "SetContract",
    "SQLiteStore",
    "Store",
    "StoreSettings",
    *_error_names,
]
