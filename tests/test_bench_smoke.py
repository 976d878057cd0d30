"""`python -m bench --smoke` end to end, so the comparison harness never rots:
statesync (with Python, Go and Rust workers), NATS and etcd (its binary is
required: .ci/run installs Debian's etcd-server)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]


def systems() -> list[str]:
    if not shutil.which("etcd"):
        pytest.fail("etcd is not installed: apt-get install etcd-server (as .ci/run does)")
    return ["statesync", "statesync-go", "statesync-rust", "nats", "etcd"]


WORKER_SDK_SYSTEMS = {"statesync-go", "statesync-rust"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("bench-smoke")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--systems",
            ",".join(systems()),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # The run is about a minute; a cold release build of the Rust worker takes longer.
        timeout=1800,
    )
    return proc, out


def test_smoke_runs_every_scenario_cleanly(smoke) -> None:
    proc, out = smoke
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = orjson.loads((out / "results.json").read_bytes())
    assert {r["system"] for r in results["runs"]} == set(systems())
    for run in results["runs"]:
        assert run["errors"] == {}, run["errors"]
        name = run["system"]
        fan = run["fanout"]
        assert fan["write_errors"] == 0 and fan["missing"] == 0, (name, fan)
        assert fan["events_delivered"] == fan["writes"] * results["sizes"]["fan_watchers"]
        assert fan["writes"] > 0 and fan["p99_ms"] > 0, (name, fan)
        storm = run["storm"]
        assert storm["caught_up"] == storm["workers"] == results["sizes"]["storm_workers"]
        cold = run["coldstorm"]
        assert cold["workers"] == results["sizes"]["cold_workers"], (name, cold)
        assert 0 < cold["first_at_head_s"] <= cold["all_at_head_s"], (name, cold)
        if name not in WORKER_SDK_SYSTEMS:
            # One snapshot (statesync) or listing (peers) each, none wasted.
            assert cold["transfers"] == cold["workers"] and cold["reconnects"] == 0, (name, cold)
        [boot] = run["bootstrap"]["sizes"]
        assert boot["keys"] == results["sizes"]["bootstrap_keys"][0] and boot["seconds"] > 0
        if name in WORKER_SDK_SYSTEMS:
            # Another SDK's worker programs, on statesync's controller: no writes of their
            # own, and the programs count no bytes.
            assert "writes" not in run and boot["bytes"] is None, (name, run.keys(), boot)
            assert boot["peak_rss_mb"] > 0 and boot["reader_rss_empty_mb"] == 0, boot
            assert results["systems"][name]["build"], name
            continue
        assert boot["bytes"] > 0, (name, boot)
        writes = run["writes"]
        for mode in ("sequential", "parallel", "window"):
            assert writes[mode]["ops"] > 0 and writes[mode]["p99_ms"] > 0, (name, mode)
        assert writes["window"]["ops"] == results["sizes"]["window_puts"]
        # Atomic multi-key batches: statesync commands and etcd Txns; NATS KV has none.
        assert ("batched" in writes) == (name != "nats"), name
        if name != "nats":
            assert writes["batched"]["ops"] == results["sizes"]["batches"]
    [ours] = [r for r in results["runs"] if r["system"] == "statesync"]
    drift = ours["drift"]
    assert set(drift["cases"]) == {str(k) for k in results["sizes"]["drift_k"]}
    for k, case in drift["cases"].items():
        assert case["problems"] == [] and case["bytes"] > 0, (k, case)
    assert 0 < drift["away"]["bytes"] < drift["away"]["snapshot_bytes"]
    commit = ours["commit"]
    for case in ("single", "writers-16", "pipelined-16", "batch-1000"):
        assert commit[case]["ops_per_s"] > 0 and commit[case]["p99_ms"] > 0, (case, commit)
    for run in results["runs"]:
        fan = run["fanout"]
        # Measured from when each write was sent, so never below acknowledged→applied.
        assert fan["p99_ms"] >= fan["after_ack"]["p99_ms"], (run["system"], fan)


def test_smoke_report_has_a_table_per_scenario_and_plots(smoke) -> None:
    proc, out = smoke
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = (out / "report.md").read_text()
    for section in (
        "## What each system promises",
        "## Goals",
        "## Durable writes",
        "## Fan-out",
        "## Bootstrap",
        "## Away while history was compacted",
        "## Reconnect storm",
        "## Cold storm",
        "## Drift",
        "## Memory",
        "## In-process commit",
    ):
        assert section in report
    for name in systems():
        assert f"| **{name}** |" in report
    # The other SDKs' systems have fan-out, storms and bootstrap rows, and say how they were built.
    for name in WORKER_SDK_SYSTEMS:
        for section in ("## Fan-out", "## Bootstrap", "## Reconnect storm", "## Cold storm"):
            rows = report.split(section, 1)[1].split("\n## ", 1)[0]
            assert f"| **{name}** |" in rows, (name, section)
        for section in ("## Durable writes", "## Drift"):
            rows = report.split(section, 1)[1].split("\n## ", 1)[0]
            assert f"| **{name}** |" not in rows, (name, section)
        assert f"- **{name}**: " in report
    for png in ("writes_throughput.png", "writes_latency_cdf.png", "fanout_latency_cdf.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report
