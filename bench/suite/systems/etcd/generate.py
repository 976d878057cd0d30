"""Regenerate rpc_pb2.py and rpc_pb2.pyi from rpc.proto (from the repository root):

    python -m bench.suite.systems.etcd.generate

protoc's output is not ruff-clean; a `# ruff: noqa` / `# fmt: off` header keeps
`ruff check` and `ruff format` off it without an exclude in pyproject.toml.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
PROTO = "bench/suite/systems/etcd/rpc.proto"
HEADER = "# ruff: noqa\n# fmt: off\n"


def main() -> int:
    args = [f"-I{ROOT}", f"--python_out={ROOT}", f"--pyi_out={ROOT}", str(ROOT / PROTO)]
    rc = protoc.main(["protoc", *args])
    if rc:
        return rc
    for name in ("rpc_pb2.py", "rpc_pb2.pyi"):
        path = HERE / name
        path.write_text(HEADER + path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
