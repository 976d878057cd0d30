"""results.json -> report.md (a table per scenario, the goals, profiles) and PNG plots.

Every cell is the median over the rounds with min-max; the first column of a
table is statesync's figure divided by that system's, on the table's headline
metric."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

Run = dict[str, Any]
Getter = Callable[[Run], float | None]
TIMES = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"
WORKER_SDK_SYSTEMS = ("statesync-go", "statesync-rust")
"""statesync's controller with the Go or Rust SDK's worker programs as the watchers
and the bootstrapping reader: fan-out, storm and bootstrap only (their writes
would be statesync's again; the drift and away cases are the Python worker's)."""


def _dig(run: Run, *path: str | int) -> Any:
    node: Any = run
    for step in path:
        if (isinstance(node, dict) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and step < len(node)
        ):
            node = node[step]
        else:
            return None
    return node


def get(*path: str | int) -> Getter:
    return lambda run: _dig(run, *path)


def boot_at(keys: int, field: str) -> Getter:
    def pick(run: Run) -> float | None:
        for size in _dig(run, "bootstrap", "sizes") or []:
            if size["keys"] == keys:
                return size[field]
        return None

    return pick


def relist_total(keys: int) -> Getter:
    """A peer's answer to drift: re-list and compare with its own copy."""

    def pick(run: Run) -> float | None:
        listed, compared = boot_at(keys, "seconds")(run), boot_at(keys, "compare_seconds")(run)
        return None if listed is None or compared is None else listed + compared

    return pick


class Figures:
    """Values of one metric for one system across rounds."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.systems = list(results["systems"])

    def runs(self, system: str) -> list[Run]:
        return [r for r in self.results["runs"] if r["system"] == system]

    def values(self, system: str, getter: Getter) -> list[float]:
        out = []
        for run in self.runs(system):
            value = getter(run)
            if isinstance(value, int | float):
                out.append(float(value))
        return out

    def median(self, system: str, getter: Getter) -> float | None:
        values = self.values(system, getter)
        return statistics.median(values) if values else None


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "B":
        return _bytes(value)
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + (f" {unit}" if unit else "")


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def cell(fig: Figures, system: str, getter: Getter, unit: str = "") -> str:
    values = fig.values(system, getter)
    if not values:
        return "-"
    mid = fmt(statistics.median(values), unit)
    if len(values) == 1:
        return mid
    return f"{mid} ({fmt(min(values), unit)}{DASH}{fmt(max(values), unit)})"


def ratio(fig: Figures, system: str, getter: Getter) -> str:
    if system == "statesync":
        return "1 (statesync)"
    ours, theirs = fig.median("statesync", getter), fig.median(system, getter)
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}{TIMES}"


Column = tuple[str, Getter, str]


def table(
    fig: Figures, systems: list[str], headline: tuple[str, Getter], columns: list[Column]
) -> list[str]:
    name, getter = headline
    head = [f"statesync ÷ system ({name})", "system", *[c[0] for c in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system in systems:
        if not any(fig.values(system, c[1]) for c in columns):
            continue
        cells = [ratio(fig, system, getter), f"**{system}**"]
        cells += [cell(fig, system, g, unit) for _, g, unit in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def durability_lines(results: dict[str, Any], systems: list[str]) -> list[str]:
    lines = ["| system | what an acknowledged write survives | driven by |", "|---|---|---|"]
    for name in systems:
        info = results["systems"][name]
        lines.append(f"| **{name}**: {info['label']} | {info['durability']} | {info['client']} |")
    return lines


def build_lines(results: dict[str, Any]) -> list[str]:
    names = [name for name in results["systems"] if name in WORKER_SDK_SYSTEMS]
    if not names:
        return []
    lines = [
        "statesync-go and statesync-rust run the same controller as statesync; their watchers "
        "(fan-out, storm) and bootstrapping reader are the Go and Rust SDKs' worker programs, "
        "one subprocess per worker started by the client processes, each printing a JSON line "
        "per change once its revision is applied (`--events changes`; the bootstrap prints "
        "only applied revisions, `--events revs`), stamped by the worker on the same clock as "
        "the writer. Every SDK's watchers keep their replica in memory, as the Python ones "
        "do; the bootstrapping reader keeps it on disk (Go's bbolt, fsynced before a revision "
        "counts as applied; Rust's SQLite). Bootstrap time includes starting the process; "
        "the programs count no bytes received (-), and "
        "their reader memory is the whole process's peak RSS.",
        "",
    ]
    return lines + [f"- **{name}**: {results['systems'][name]['build']}" for name in names] + [""]


def cpu_per_write(run: Run) -> float | None:
    """Server CPU microseconds per write with 16 unary clients."""
    cpu, ops = (
        _dig(run, "writes", "parallel", "server_cpu_s"),
        _dig(run, "writes", "parallel", "ops"),
    )
    return cpu / ops * 1e6 if cpu is not None and ops else None


def goals(fig: Figures, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The native data plane's goals (issue 12), each met or missed in this run."""
    sizes = results["sizes"]
    out = []

    def add(goal: str, ours: float | None, theirs: float | None, target: str, ok: bool | None):
        out.append({"goal": goal, "statesync": ours, "peer": theirs, "target": target, "met": ok})

    def at_least(goal: str, getter: Getter, peer: str, times: float, peer_getter: Getter | None):
        ours, theirs = fig.median("statesync", getter), fig.median(peer, peer_getter or getter)
        r = ours / theirs if ours and theirs else None
        add(
            goal,
            ours,
            theirs,
            f"{r:.2f}{TIMES} {peer}" if r else "-",
            None if r is None else r >= times,
        )

    def at_most(goal: str, getter: Getter, peer: str, peer_getter: Getter | None = None):
        ours, theirs = fig.median("statesync", getter), fig.median(peer, peer_getter or getter)
        r = ours / theirs if ours is not None and theirs else None
        add(
            goal,
            ours,
            theirs,
            f"{r:.2f}{TIMES} {peer}" if r else "-",
            None if r is None else r <= 1,
        )

    at_least(
        f"durable writes, {sizes['clients']} unary clients: ≥ 1.0{TIMES} etcd (stretch 1.3{TIMES})",
        get("writes", "parallel", "ops_per_s"),
        "etcd",
        1.0,
        None,
    )
    at_least(
        f"pipelined, {sizes['window']} in flight: ≥ 1.0{TIMES} etcd",
        get("writes", "window", "ops_per_s"),
        "etcd",
        1.0,
        None,
    )
    at_least(
        f"batched ({sizes['batch_size']} puts per command): ≥ 1.0{TIMES} etcd's Txn",
        get("writes", "batched", "puts_per_s"),
        "etcd",
        1.0,
        None,
    )
    rate = fig.median("statesync", get("fanout", "writes_per_s"))
    missed = fig.median("statesync", get("fanout", "missing"))
    add(
        f"fan-out, {sizes['fan_rate']:.0f} writes/s to {sizes['fan_watchers']} workers: "
        "the full rate sustained, every write applied by every worker",
        rate,
        sizes["fan_rate"],
        f"{rate:,.0f} writes/s, {missed:.0f} missed"
        if rate is not None and missed is not None
        else "-",
        None
        if rate is None or missed is None
        else rate >= 0.98 * sizes["fan_rate"] and missed == 0,
    )
    at_most("fan-out p99, sent→applied: ≤ NATS default's p99", get("fanout", "p99_ms"), "nats")
    first, last = sizes["bootstrap_keys"][0], sizes["bootstrap_keys"][-1]
    at_most(f"bootstrap of {first:,} keys: ≤ etcd's range read", boot_at(first, "seconds"), "etcd")
    if last != first:
        at_most(f"bootstrap of {last:,} keys: ≤ NATS", boot_at(last, "seconds"), "nats")
    at_most(
        f"reconnect storm, {sizes['storm_workers']} workers: ≤ NATS",
        get("storm", "restart_to_all_at_head_s"),
        "nats",
    )
    cold = f"cold storm, {sizes['cold_workers']} empty workers to {sizes['cold_keys']:,} keys"
    at_most(f"{cold}: ≤ NATS", get("coldstorm", "all_at_head_s"), "nats")
    workers = fig.median("statesync", get("coldstorm", "workers"))
    transfers = fig.median("statesync", get("coldstorm", "transfers"))
    reconnects = fig.median("statesync", get("coldstorm", "reconnects"))
    if workers is None or transfers is None or reconnects is None:
        add(f"{cold}: every one at the head, each bootstrapped once", None, None, "-", None)
    else:
        add(
            f"{cold}: every one at the head, each bootstrapped once",
            transfers,
            sizes["cold_workers"],
            f"{workers:.0f} at the head, {transfers:.0f} snapshots, {reconnects:.0f} reconnects",
            workers == transfers == sizes["cold_workers"] and reconnects == 0,
        )
    writers = fig.median("statesync", get("commit", "writers-16", "ops_per_s"))
    add(
        "in-process commit, 16 writers: ≥ 30,000 commands/s",
        writers,
        30_000,
        f"{writers:,.0f}/s" if writers else "-",
        None if writers is None else writers >= 30_000,
    )
    p99 = fig.median("statesync", get("commit", "single", "p99_ms"))
    add(
        "in-process commit, one writer: p99 < 2 ms",
        p99,
        2.0,
        f"{p99:.2f} ms" if p99 is not None else "-",
        None if p99 is None else p99 < 2.0,
    )
    at_most("controller CPU per unary commit: ≤ etcd's CPU per put", cpu_per_write, "etcd")
    mib = fig.median("statesync", boot_at(last, "server_mb_per_million_keys"))
    add(
        "server RSS per million keys: ≤ 167 MiB (the Python data plane's)",
        mib,
        167,
        f"{mib:,.0f} MiB" if mib is not None else "-",
        None if mib is None else mib <= 167,
    )
    k10 = fig.median("statesync", get("drift", "cases", "10", "bytes"))
    relist = fig.median("statesync", get("drift", "relist", "bytes"))
    share = k10 / relist if k10 is not None and relist else None
    add(
        f"drift repair, k = 10 of {sizes['drift_keys']:,} keys: ≤ 1% of a re-list's bytes",
        k10,
        relist,
        f"{share:.4%} of a re-list" if share is not None else "-",
        None if share is None else share <= 0.01,
    )
    return out


def headline(results: dict[str, Any]) -> list[str]:
    """One row per scenario's main figure, one column per system (medians)."""
    fig = Figures(results)
    sizes = results["sizes"]
    last = sizes["bootstrap_keys"][-1]
    rows: list[tuple[str, Getter, str]] = [
        ("durable writes/s, 1 client", get("writes", "sequential", "ops_per_s"), ""),
        (
            f"durable writes/s, {sizes['clients']} clients",
            get("writes", "parallel", "ops_per_s"),
            "",
        ),
        (
            f"pipelined writes/s, {sizes['window']} in flight",
            get("writes", "window", "ops_per_s"),
            "",
        ),
        (
            f"batched puts/s, {sizes['batch_size']} per atomic command",
            get("writes", "batched", "puts_per_s"),
            "",
        ),
        (
            f"fan-out to {sizes['fan_watchers']}: writes/s sustained (of {sizes['fan_rate']:.0f})",
            get("fanout", "writes_per_s"),
            "",
        ),
        ("fan-out: sent→applied p99", get("fanout", "p99_ms"), "ms"),
        *[(f"bootstrap, {k:,} keys", boot_at(k, "seconds"), "s") for k in sizes["bootstrap_keys"]],
        (
            f"back after compaction ({sizes['away_keys']:,} keys, 1% changed): bytes",
            _away_bytes(sizes["away_keys"]),
            "B",
        ),
        (
            f"reconnect storm, {sizes['storm_workers']} workers: restart → all at head",
            get("storm", "restart_to_all_at_head_s"),
            "s",
        ),
        (
            f"cold storm, {sizes['cold_workers']} empty workers to {sizes['cold_keys']:,} keys: "
            "all at head",
            get("coldstorm", "all_at_head_s"),
            "s",
        ),
        (
            f"drift, k = 10 of {sizes['drift_keys']:,}: time",
            _drift(10, "seconds", sizes["drift_keys"], "seconds"),
            "s",
        ),
        (
            f"drift, k = 10 of {sizes['drift_keys']:,}: bytes",
            _drift(10, "bytes", sizes["drift_keys"], "bytes"),
            "B",
        ),
        ("server RSS per million keys", boot_at(last, "server_mb_per_million_keys"), "MiB"),
    ]
    systems = fig.systems
    lines = [
        "| median of the rounds | " + " | ".join(systems) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    for label, getter, unit in rows:
        cells = [fmt(fig.median(s, getter), unit) for s in systems]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| goal | statesync | compared with | measured | met |", "|---|---|---|---|---|"]
    for row in rows:
        met = {True: "**yes**", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(
            f"| {row['goal']} | {fmt(row['statesync'])} | {fmt(row['peer'])} | "
            f"{row['target']} | {met} |"
        )
    return lines


def profile_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    where = (
        ("Controller, 16 unary clients", ("writes", "parallel", "profile")),
        ("Controller, fan-out", ("fanout", "profile")),
        ("Worker, bootstrap", ("bootstrap", "sizes", 0, "profile")),
    )
    for label, path in where:
        for run in results["runs"]:
            prof = _dig(run, *path) if run["system"] == "statesync" else None
            if not prof:
                continue
            lines.append(f"**{label}** (py-spy, round {run['repeat'] + 1}):")
            lines.append("")
            lines.append("| own time | frame |")
            lines.append("|---:|---|")
            for frame, share in prof.get("own", [])[:10]:
                lines.append(f"| {share:.1f}% | `{frame}` |")
            lines.append("")
            lines.append("| inclusive (statesync frames) | frame |")
            lines.append("|---:|---|")
            for frame, share in prof.get("inclusive", [])[:10]:
                lines.append(f"| {share:.1f}% | `{frame}` |")
            lines.append("")
            break
    return lines


def sections(results: dict[str, Any]) -> dict[str, list[str]]:
    fig = Figures(results)
    systems = fig.systems
    sizes = results["sizes"]
    out: dict[str, list[str]] = {}
    ms = "ms"
    out["Durable writes"] = table(
        fig,
        systems,
        (f"{sizes['clients']} clients ops/s", get("writes", "parallel", "ops_per_s")),
        [
            ("1 client ops/s", get("writes", "sequential", "ops_per_s"), ""),
            ("1 client p50", get("writes", "sequential", "p50_ms"), ms),
            ("1 client p99", get("writes", "sequential", "p99_ms"), ms),
            (f"{sizes['clients']} clients ops/s", get("writes", "parallel", "ops_per_s"), ""),
            (f"{sizes['clients']} clients p99", get("writes", "parallel", "p99_ms"), ms),
            (
                f"pipelined, window {sizes['window']}: ops/s",
                get("writes", "window", "ops_per_s"),
                "",
            ),
            ("pipelined p99", get("writes", "window", "p99_ms"), ms),
            (
                f"batched, {sizes['batch_size']} puts per command, {sizes['batch_window']} in "
                "flight: puts/s",
                get("writes", "batched", "puts_per_s"),
                "",
            ),
            ("batch p99", get("writes", "batched", "p99_ms"), ms),
            ("server CPU, 16 clients", get("writes", "parallel", "server_cpu_s"), "s"),
            ("server CPU per write, 16 clients", cpu_per_write, "µs"),
        ],
    )
    out["Fan-out"] = table(
        fig,
        systems,
        ("p99, lower is better", get("fanout", "p99_ms")),
        [
            ("sent→applied p50", get("fanout", "p50_ms"), ms),
            ("p99", get("fanout", "p99_ms"), ms),
            ("max", get("fanout", "max_ms"), ms),
            ("acknowledged→applied p50", get("fanout", "after_ack", "p50_ms"), ms),
            ("acknowledged→applied p99", get("fanout", "after_ack", "p99_ms"), ms),
            ("put p99 (sent→acknowledged)", get("fanout", "put_p99_ms"), ms),
            ("writes/s achieved", get("fanout", "writes_per_s"), ""),
            ("events/s delivered", get("fanout", "events_per_s"), ""),
            ("server CPU (% of a core)", get("fanout", "server_cpu_pct"), "%"),
            ("changes missed", get("fanout", "missing"), ""),
        ],
    )
    boot_cols: list[Column] = []
    for keys in sizes["bootstrap_keys"]:
        boot_cols += [
            (f"{keys:,} keys: time", boot_at(keys, "seconds"), "s"),
            (f"{keys:,} keys: bytes", boot_at(keys, "bytes"), "B"),
        ]
    first = sizes["bootstrap_keys"][0]
    out["Bootstrap"] = table(
        fig,
        systems,
        (f"time at {first:,} keys, lower is better", boot_at(first, "seconds")),
        boot_cols,
    )
    away = sizes["away_keys"]
    out["Away while history was compacted"] = table(
        fig,
        systems,
        ("time, lower is better", _away_time(away)),
        [
            ("time", _away_time(away), "s"),
            ("bytes", _away_bytes(away), "B"),
        ],
    )
    out["Reconnect storm"] = table(
        fig,
        systems,
        ("restart → all at head, lower is better", get("storm", "restart_to_all_at_head_s")),
        [
            ("restart (stop + start)", get("storm", "restart_s"), "s"),
            ("restart → all at head", get("storm", "restart_to_all_at_head_s"), "s"),
            ("ready → all at head", get("storm", "ready_to_all_at_head_s"), "s"),
            ("ready → half at head", get("storm", "ready_to_median_at_head_s"), "s"),
            ("server peak RSS", get("storm", "server_peak_rss_mb"), "MiB"),
            ("caught up", get("storm", "caught_up"), ""),
        ],
    )
    out["Cold storm"] = table(
        fig,
        systems,
        ("all at the head, lower is better", get("coldstorm", "all_at_head_s")),
        [
            ("first at the head", get("coldstorm", "first_at_head_s"), "s"),
            ("half at the head", get("coldstorm", "half_at_head_s"), "s"),
            ("all at the head", get("coldstorm", "all_at_head_s"), "s"),
            ("full transfers", get("coldstorm", "transfers"), ""),
            ("reconnects", get("coldstorm", "reconnects"), ""),
            ("server RSS before", get("coldstorm", "server_rss_before_mb"), "MiB"),
            ("server peak RSS", get("coldstorm", "server_peak_rss_mb"), "MiB"),
        ],
    )
    drift_cols: list[Column] = []
    dk = sizes["drift_keys"]
    for k in sizes["drift_k"]:
        drift_cols += [
            (f"k={k}: time", _drift(k, "seconds", dk, "seconds"), "s"),
            (f"k={k}: bytes", _drift(k, "bytes", dk, "bytes"), "B"),
        ]
    out["Drift"] = table(
        fig,
        systems,
        ("time at k=10, lower is better", _drift(10, "seconds", dk, "seconds")),
        drift_cols,
    )
    last = sizes["bootstrap_keys"][-1]
    out["Memory"] = table(
        fig,
        systems,
        ("server MiB per million keys", boot_at(last, "server_mb_per_million_keys")),
        [
            ("server RSS, empty", boot_at(last, "server_rss_empty_mb"), "MiB"),
            (f"server RSS, {last:,} keys", boot_at(last, "server_rss_mb"), "MiB"),
            ("server MiB per million keys", boot_at(last, "server_mb_per_million_keys"), ""),
            ("worker/reader MiB per million keys", boot_at(last, "reader_mb_per_million_keys"), ""),
        ],
    )
    out["In-process commit"] = table(
        fig,
        ["statesync"],
        ("16 writers, commands/s", get("commit", "writers-16", "ops_per_s")),
        [
            ("1 writer: commands/s", get("commit", "single", "ops_per_s"), ""),
            ("1 writer: p99", get("commit", "single", "p99_ms"), ms),
            ("16 writers: commands/s", get("commit", "writers-16", "ops_per_s"), ""),
            ("16 writers: p99", get("commit", "writers-16", "p99_ms"), ms),
            (f"16 {TIMES} 8 in flight: commands/s", get("commit", "pipelined-16", "ops_per_s"), ""),
            ("1,000 per commit_many: commands/s", get("commit", "batch-1000", "ops_per_s"), ""),
            ("raw fsync", get("commit", "fsync_ms"), ms),
        ],
    )
    return out


def _away_time(keys: int) -> Getter:
    def pick(run: Run) -> float | None:
        if run["system"] in WORKER_SDK_SYSTEMS:
            return None
        if run["system"] == "statesync":
            return _dig(run, "drift", "away", "seconds")
        return boot_at(keys, "seconds")(run)

    return pick


def _away_bytes(keys: int) -> Getter:
    def pick(run: Run) -> float | None:
        if run["system"] in WORKER_SDK_SYSTEMS:
            return None
        if run["system"] == "statesync":
            return _dig(run, "drift", "away", "bytes")
        return boot_at(keys, "bytes")(run)

    return pick


def _drift(k: int, ours: str, keys: int, theirs: str) -> Getter:
    """statesync: the repair's figure; a peer: re-list (+ compare) at `keys`, whatever k is."""

    def pick(run: Run) -> float | None:
        if run["system"] in WORKER_SDK_SYSTEMS:
            return None
        if run["system"] == "statesync":
            return _dig(run, "drift", "cases", str(k), ours)
        if theirs == "seconds":
            return relist_total(keys)(run)
        return boot_at(keys, theirs)(run)

    return pick


NOTES = {
    "Durable writes": (
        "Each client is a connection doing one put at a time (100-byte JSON values, a new key "
        "each), {clients} clients in 2 client processes of {half} connections. Pipelined: one "
        "connection with up to {window} writes outstanding, each acknowledged on its own "
        "(statesync: CommitStream, one put per command; etcd: concurrent unary Puts on one "
        "HTTP/2 channel; NATS: JetStream publishes with acks awaited). Batched: atomic "
        "multi-key writes of {batch_size} puts, {batch_window} in flight on one connection "
        "(statesync: a command per batch on CommitStream; etcd: a Txn per batch; NATS KV "
        "has no atomic multi-key write)."
    ),
    "Fan-out": (
        "One writer, {fan_rate:.0f} puts/s for {fan_seconds:.0f} s, each put its own task on "
        "one connection; {fan_watchers} watchers (statesync: SDK Workers with an in-memory "
        "replica, ACKing; etcd: Watch streams; NATS: ordered consumers), 4 per client process. "
        "Latency = when a watcher applied the change minus when the writer sent the put, one "
        "clock; acknowledged→applied (from when the put returned, applied-before-ack as 0) "
        "is shown beside it."
    ),
    "Bootstrap": (
        "A fresh reader reaching the head. statesync: a new Worker with an on-disk replica "
        "until it has applied the head (snapshot over the sync stream, digests checked). "
        "Peers: the whole namespace read into a dict (etcd: paginated Range at one revision, "
        "10,000 per page; NATS: an ordered consumer delivering the last value per subject). "
        "Bytes: protobuf sizes received (gRPC), the client's inbound byte count (NATS)."
    ),
    "Away while history was compacted": (
        "A worker away while 1% of {away_keys:,} keys changed and history was compacted. "
        "statesync: it comes back and is reconciled by digest descent (time = detection to "
        "verified repair). Peers: their watch cannot resume past compaction (etcd) or has no "
        "history to resume from beyond the last value (NATS history=1): re-list."
    ),
    "Reconnect storm": (
        "{storm_workers} watchers connected; the server is restarted (SIGTERM, start on the "
        "same data); then one write. Time from the restart until every watcher has applied "
        "that write, and from the server being ready again; peak RSS of the restarted server."
    ),
    "Cold storm": (
        "{cold_workers} empty readers, {cold_keys:,} keys loaded: all start at once (spread "
        "over the client processes), each on its own connection, and stay until every one "
        "is at the head. statesync: new Workers with an in-memory replica (snapshot over "
        "the sync stream; the controller streams at most 4 at once and keeps the others "
        "queued and alive); peers: a re-list each, as for the bootstrap. Time from the "
        "start; full transfers = snapshots installed (statesync) or listings (peers), one "
        "per reader when nothing is wasted; the Go and Rust worker programs do not count "
        "theirs (-)."
    ),
    "Drift": (
        "k wrong keys on a worker of {drift_keys:,} keys. statesync: found at an ACK by "
        "digest, localized by descent, repaired and verified (bench/suite/drift.py; "
        "time = detection to verified). Peers have no way to detect drift: re-list and "
        "compare with the local copy, whatever k is (time = re-list + compare)."
    ),
    "In-process commit": (
        "statesync's store in the benchmark's own process, no network: one put of a 100-byte "
        "value per command, fsynced before it is acknowledged, on a fresh store per case "
        "({commit_commands:,} commands; one writer runs a fifth of them). 16 writers are "
        "asyncio tasks with one command (or 8) in flight each; commit_many hands the store "
        "1,000 commands at once. Raw fsync: one 100-byte write + fsync on the same disk."
    ),
    "Memory": (
        "RSS after loading the largest bootstrap size. Worker/reader: the bootstrapping "
        "process's peak RSS growth (statesync: a Worker whose replica is SQLite on disk; "
        "peers: a dict of every key and value)."
    ),
}


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    fig = Figures(results)
    sizes = results["sizes"]
    lines = [
        f"# statesync next to etcd and NATS JetStream ({results['date']})",
        "",
        f"Command: `{results['command']}`, {results.get('runtime_s', 0) / 60:.0f} min; "
        f"commit {results['git']}; Python {results['python']}, {results['cpus']} CPUs. "
        f"Figures are medians of {sizes['repeats']} round(s) with min{DASH}max; rounds alternate "
        "between systems (each round runs every system in turn, on a fresh data directory).",
        "",
        "## What each system promises",
        "",
        *durability_lines(results, fig.systems),
        "",
        *build_lines(results),
        "## Goals",
        "",
        *goal_lines(goals(fig, results)),
        "",
        "## Headline",
        "",
        *headline(results),
        "",
    ]
    params = {**sizes, "half": sizes["clients"] // 2}
    for title, rows in sections(results).items():
        lines += [f"## {title}", "", NOTES[title].format(**params), "", *rows, ""]
    errors = [
        (r["system"], r["repeat"], k, v) for r in results["runs"] for k, v in r["errors"].items()
    ]
    if errors:
        lines += ["## Errors", ""]
        for system, repeat, scenario, text in errors:
            last = text.strip().splitlines()[-1]
            lines.append(f"- {system}, round {repeat + 1}, {scenario}: `{last}`")
        lines.append("")
    prof = profile_lines(results)
    if prof:
        lines += ["## Where statesync's controller spends its time", "", *prof]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def draw(results: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_data = Figures(results)
    systems = fig_data.systems
    drawn = []

    # Throughput bars: median with min-max whiskers.
    modes = [
        ("1 client", get("writes", "sequential", "ops_per_s")),
        ("16 clients", get("writes", "parallel", "ops_per_s")),
        ("pipelined", get("writes", "window", "ops_per_s")),
        ("batched", get("writes", "batched", "puts_per_s")),
    ]
    writers = [s for s in systems if any(fig_data.values(s, getter) for _, getter in modes)]
    if writers:  # none where only the other SDKs' systems ran
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / max(1, len(writers))
        for n, system in enumerate(writers):
            meds, lo, hi = [], [], []
            for _, getter in modes:
                values = fig_data.values(system, getter) or [0.0]
                m = statistics.median(values)
                meds.append(m)
                lo.append(m - min(values))
                hi.append(max(values) - m)
            xs = [i + n * width for i in range(len(modes))]
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=system)
        ax.set_xticks([i + width * (len(writers) - 1) / 2 for i in range(len(modes))])
        ax.set_xticklabels([m for m, _ in modes])
        ax.set_ylabel("durable writes/s")
        ax.set_title(f"Durable writes (median, min{DASH}max)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "writes_throughput.png", dpi=110)
        plt.close(fig)
        drawn.append("writes_throughput.png")

    for name, path, title in (
        (
            "writes_latency_cdf.png",
            ("writes", "parallel", "cdf_ms"),
            "Durable write latency, 16 clients",
        ),
        ("fanout_latency_cdf.png", ("fanout", "cdf_ms"), "Fan-out: write sent → applied"),
    ):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        any_line = False
        for system in systems:
            runs = [r for r in fig_data.runs(system) if _dig(r, *path)]
            if not runs:
                continue
            cdf = _dig(runs[len(runs) // 2], *path)
            ys = [i / (len(cdf) - 1) for i in range(len(cdf))]
            ax.plot([max(x, 0.01) for x in cdf], ys, label=system)
            any_line = True
        if not any_line:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_xlabel("ms (log)")
        ax.set_ylabel("fraction")
        ax.set_title(title + " (CDF, median round)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        drawn.append(name)

    sizes = results["sizes"]["bootstrap_keys"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(systems))
    plotted = False
    for n, system in enumerate(systems):
        meds = [fig_data.median(system, boot_at(k, "seconds")) or 0.0 for k in sizes]
        if any(meds):
            plotted = True
            ax.bar([i + n * width for i in range(len(sizes))], meds, width, label=system)
    if plotted:
        ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(sizes))])
        ax.set_xticklabels([f"{k:,} keys" for k in sizes])
        ax.set_ylabel("seconds to reach the head")
        ax.set_title("Bootstrap (median)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "bootstrap.png", dpi=110)
        drawn.append("bootstrap.png")
    plt.close(fig)
    return drawn


ANALYSIS = "analysis.md"
"""Hand-written reading of a committed run, kept next to it and appended to the report."""


def write(results: dict[str, Any], out_dir: Path, *, plots: bool = True) -> Path:
    drawn = draw(results, out_dir) if plots else []
    text = markdown(results, drawn)
    analysis = out_dir / ANALYSIS
    if analysis.exists():
        text += "\n" + analysis.read_text()
    path = out_dir / "report.md"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.suite.report DIR`: render DIR/report.md and plots again
    from DIR/results.json (after a change to the report, or to analysis.md)."""
    import argparse

    import orjson

    parser = argparse.ArgumentParser(prog="python -m bench.suite.report", description=main.__doc__)
    parser.add_argument("dir", type=Path, help="a results directory, e.g. bench/results/DATE")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    source = args.dir / "results.json"
    if not source.exists():
        parser.error(f"{source} does not exist")
    path = write(orjson.loads(source.read_bytes()), args.dir, plots=not args.no_plots)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
