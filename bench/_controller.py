"""What the benchmark's parts share: child processes (CPU, stop with SIGTERM,
log tail), /proc readings of any process (CPU seconds, peak and current RSS),
the machine's load around a run, the `statesync` executable, the 100-byte
value every write puts, and py-spy profiles."""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = [
    "CLK_TCK",
    "ChildProcess",
    "MachineLoad",
    "Profiler",
    "cpu_seconds",
    "git_describe",
    "make_value",
    "pct",
    "rss_mb",
    "statesync_exe",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")
VALUE_BYTES = 100


def serve_argv(data: Path, listen: str, ready: Path, *extra: str) -> list[str]:
    """`statesync serve` on `data`, no HTTP port, writing `ready` once it serves."""
    argv = [statesync_exe(), "serve", "--data", str(data), "--listen", listen]
    return [*argv, "--http", "none", "--ready-file", str(ready), *extra]


def statesync_exe() -> str:
    exe = Path(sys.executable).with_name("statesync")
    if exe.exists():
        return str(exe)
    found = shutil.which("statesync")
    if found is None:
        raise RuntimeError("the statesync command is not installed (pip install -e .)")
    return found


def make_value(i: int) -> dict[str, object]:
    """A small document whose canonical JSON is exactly VALUE_BYTES."""
    doc = {"host": f"10.0.{i % 256}.{i % 200}", "port": 8080, "weight": i % 100, "pad": ""}
    size = len(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
    doc["pad"] = "x" * (VALUE_BYTES - size)
    return doc


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """VmHWM (peak resident set) or VmRSS (current) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class MachineLoad:
    """System-wide CPU use over a window (/proc/stat), and the load average.

    The figures say how contended the machine was: other processes (busy
    beyond what the benchmark's own processes used) and hypervisor steal."""

    def __init__(self) -> None:
        self.loadavg_before = self._loadavg()
        self._before = self._times()

    @staticmethod
    def _loadavg() -> list[float]:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]

    @staticmethod
    def _times() -> list[int]:
        line = Path("/proc/stat").read_text().splitlines()[0]
        return [int(x) for x in line.split()[1:9]]

    def finish(self) -> dict[str, object]:
        after = self._times()
        d = [a - b for a, b in zip(after, self._before, strict=True)]
        user, nice, system, idle, iowait, irq, softirq, steal = d
        total = max(1, sum(d))
        wall_cores = total / (os.cpu_count() or 1)
        return {
            "loadavg_1m_before": self.loadavg_before[0],
            "loadavg_1m_after": self._loadavg()[0],
            "cpus": os.cpu_count(),
            "busy_pct": (user + nice + system + irq + softirq) / total * 100,
            "iowait_pct": iowait / total * 100,
            "steal_pct": steal / total * 100,
            "idle_pct": idle / total * 100,
            "busy_cpu_s": (user + nice + system + irq + softirq) / CLK_TCK,
            "window_s": wall_cores / CLK_TCK,
        }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ChildProcess:
    """A benchmark's child process with its stderr in `log`: CPU, stop, log tail."""

    proc: subprocess.Popen[Any]
    pid: int
    log: Path
    _stderr: IO[bytes]

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a graceful shutdown), SIGKILL after `timeout`; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


class Profiler:
    """py-spy (if installed) sampling a process into collapsed stacks; `summary()`
    gives the top frames by own time and by inclusive time (Python frames only)."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("py-spy")
        if exe is None:
            return
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--threads",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def summary(self, top: int = 12) -> dict[str, list[tuple[str, float]]]:
        if not self.out.exists():
            return {}
        own: collections.Counter[str] = collections.Counter()
        incl: collections.Counter[str] = collections.Counter()
        total = 0
        frame = re.compile(r"(.*) \((.*?):(\d+)\)")
        for line in self.out.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            count = int(n)
            total += count
            names = []
            for f in stack.split(";"):
                m = frame.match(f)
                if m is None:
                    names.append(f)
                    continue
                path = m.group(2).split("site-packages/")[-1]
                if "/statesync/" in path:
                    path = "statesync/" + path.rsplit("/statesync/", 1)[-1]
                names.append(f"{m.group(1)} ({path})")
            own[names[-1]] += count
            for name in set(names):
                incl[name] += count
        if not total:
            return {}
        # Inclusive: statesync frames only, without the wrappers around everything.
        inclusive = [
            (k, round(v / total * 100, 1))
            for k, v in incl.most_common()
            if "statesync/" in k and v < 0.9 * total
        ]
        return {
            "samples": [("all", float(total))],
            "own": [(k, round(v / total * 100, 1)) for k, v in own.most_common(top)],
            "inclusive": inclusive[:top],
        }


def git_describe() -> str:
    """HEAD's short hash, plus the statesync/ files that differ from it (others'
    work in progress is part of what was measured)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=here,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../statesync", "../proto"],
            capture_output=True,
            text=True,
            check=True,
            cwd=here,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = sorted(line[3:] for line in dirty if line.strip())
    return head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")
