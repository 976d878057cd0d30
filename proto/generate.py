"""Regenerate the Python code for the wire contract.

    python proto/generate.py

Writes statesync/v1/statesync_pb2.py, statesync_pb2.pyi and
statesync_pb2_grpc.py from proto/statesync/v1/statesync.proto with grpcio-tools.
tests/test_wire.py fails when the checked-in code no longer matches the proto.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = "statesync/v1/statesync.proto"


def main() -> int:
    include = Path(protoc.__file__).parent / "_proto"
    return protoc.main(
        [
            "protoc",
            f"-I{ROOT / 'proto'}",
            f"-I{include}",
            f"--python_out={ROOT}",
            f"--pyi_out={ROOT}",
            f"--grpc_python_out={ROOT}",
            str(ROOT / "proto" / PROTO),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
