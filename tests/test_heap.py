"""`statesync serve` tunes glibc's heap to give freed memory back (statesync/server/heap.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_settings_apply_on_glibc() -> None:
    # In a process of its own: the test run's allocator stays as it was.
    code = "from statesync.server.heap import return_freed_memory as r; print(r())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
