"""Regenerate the Go code for the wire contract.

    python go/generate.py

Writes go/statesyncv1/statesync.pb.go and statesync_grpc.pb.go from
proto/statesync/v1/statesync.proto with the protoc that grpcio-tools ships and
the protoc-gen-go and protoc-gen-go-grpc versions pinned as tools in go/go.mod.
The package path is the proto's own `go_package` option. tests/test_go.py fails
when the checked-in code no longer matches what this script produces.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
GO = ROOT / "go"
PROTO = "statesync/v1/statesync.proto"
MODULE = "github.com/statesync/statesync/go"
PLUGINS = {
    "protoc-gen-go": "google.golang.org/protobuf/cmd/protoc-gen-go",
    "protoc-gen-go-grpc": "google.golang.org/grpc/cmd/protoc-gen-go-grpc",
}


def generate(out: Path) -> None:
    """Write the generated package under `out` (a directory standing for go/)."""
    with tempfile.TemporaryDirectory() as bin_dir:
        for name, package in PLUGINS.items():
            # Built from go/go.mod's tool pins, so every machine runs the same versions.
            subprocess.run(
                ["go", "build", "-o", str(Path(bin_dir) / name), package],
                cwd=GO,
                check=True,
            )
        include = Path(protoc.__file__).parent / "_proto"
        rc = protoc.main(
            [
                "protoc",
                f"-I{ROOT / 'proto'}",
                f"-I{include}",
                f"--plugin=protoc-gen-go={Path(bin_dir) / 'protoc-gen-go'}",
                f"--plugin=protoc-gen-go-grpc={Path(bin_dir) / 'protoc-gen-go-grpc'}",
                f"--go_out={out}",
                f"--go_opt=module={MODULE}",
                f"--go-grpc_out={out}",
                f"--go-grpc_opt=module={MODULE}",
                str(ROOT / "proto" / PROTO),
            ]
        )
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit status {rc}")


if __name__ == "__main__":
    generate(GO)
    sys.exit(0)
