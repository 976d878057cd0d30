"""`statesync contract check` and `statesync schema ...` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import Server, cli, cli_many, ok_json, server

__all__ = ["server"]  # the module-scoped controller fixture

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "contracts"
V1, V2, V3 = (str(EXAMPLES / f"orders.v{n}.json") for n in (1, 2, 3))
TRANSLATION = str(EXAMPLES / "orders.v1-v2.json")
V3_BREAKS = {"/properties/qty/maximum", "/required", "/properties/priority/enum"}


def test_contract_check_is_a_ci_gate_offline(tmp_path: Path) -> None:
    bad_schema = tmp_path / "bad.json"
    bad_schema.write_text('{"type": "strnig"}')
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    compatible, breaking, as_json, transitive, none, invalid, unreadable, missing = cli_many(
        None,
        ["contract", "check", V2, "--against", V1],
        ["contract", "check", V3, "--against", V2],
        ["contract", "check", V3, "--against", V2, "--json"],
        ["contract", "check", V3, "--against", V1, "--against", V2, "--mode", "full_transitive"],
        ["contract", "check", V3, "--against", V2, "--mode", "NONE"],
        ["contract", "check", str(bad_schema), "--against", V1],
        ["contract", "check", str(not_json), "--against", V1],
        ["contract", "check", str(tmp_path / "absent.json"), "--against", V1],
    )
    assert compatible.returncode == 0 and "compatible" in compatible.stdout
    assert "property-added-to-open-model" in compatible.stdout  # the verdict is explained
    assert breaking.returncode == 1 and "INCOMPATIBLE" in breaking.stdout
    for path in V3_BREAKS:
        assert path in breaking.stdout
    verdict = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and verdict["compatible"] is False
    assert {b["path"] for b in verdict["breaking"]} == V3_BREAKS
    assert {b["direction"] for b in verdict["breaking"]} == {"backward"}
    assert transitive.returncode == 1
    against = {b.split("against ")[1][:2] for b in transitive.stdout.splitlines() if "against" in b}
    assert against == {"v1", "v2"}  # transitive: checked against every earlier version
    assert none.returncode == 0
    assert invalid.returncode == 4 and "/type" in invalid.stderr
    assert unreadable.returncode == 4 and "not valid JSON" in unreadable.stderr
    assert missing.returncode == 4 and "absent.json" in missing.stderr


def test_register_list_show_diff_and_refusals(server: Server) -> None:
    address = server.address
    registered = ok_json(address, "schema", "register", "cli-orders", V1, "--owner", "payments")
    assert registered["version"] == 1 and registered["mode"] == "BACKWARD"
    assert ok_json(address, "put", "cli-orders", "o1", '{"item": "pen", "qty": 2}')["rev"]
    refused = cli(address, "put", "cli-orders", "o2", '{"item": "", "qty": 0}')
    assert refused.returncode == 4
    for part in ("cli-orders", "o2", "schema v1", "/item", "/qty"):
        assert part in refused.stderr
    assert (
        ok_json(address, "schema", "register", "cli-orders", V2, "--translation", TRANSLATION)[
            "version"
        ]
        == 2
    )
    old_writer = ok_json(
        address, "put", "cli-orders", "o3", '{"item": "ink", "qty": 1}', "--schema-version", "1"
    )
    assert old_writer["rev"]
    gate, breaking, unforced, listing, shown, diff, unknown = cli_many(
        address,
        ["contract", "check", V3, "--ns", "cli-orders", "--json"],
        ["schema", "register", "cli-orders", V3],
        ["schema", "register", "cli-orders", V3, "--force"],
        ["schema", "list", "--json"],
        ["schema", "show", "cli-orders", "--version", "2", "--json"],
        ["schema", "diff", "cli-orders", "1", "2", "--json"],
        ["schema", "show", "no-such-ns"],
    )
    assert gate.returncode == 1 and json.loads(gate.stdout)["version"] == 3
    assert breaking.returncode == 4
    for path in V3_BREAKS:
        assert path in breaking.stderr
    assert "--force" in breaking.stderr
    assert unforced.returncode == 4 and "--reason" in unforced.stderr
    summaries = [json.loads(line) for line in listing.stdout.splitlines()]
    mine = next(s for s in summaries if s["namespace"] == "cli-orders")
    assert mine["current"] == 2 and mine["owner"]["team"] == "payments"
    version = json.loads(shown.stdout)["version"]
    assert version["translation"]["up"][0]["op"] == "add" and version["since_rev"] > 0
    assert [json.loads(line)["rule"] for line in diff.stdout.splitlines()] == [
        "property-added-to-open-model"
    ]
    assert unknown.returncode == 1
    forced = ok_json(
        address, "schema", "register", "cli-orders", V3, "--force", "--reason", "INC-7"
    )
    assert forced["version"] == 3 and forced["forced"] is True
    shown = cli(address, "schema", "show", "cli-orders")
    assert shown.returncode == 0 and "FORCED: INC-7" in shown.stdout
    assert ok_json(address, "schema", "set", "cli-orders", "--mode", "full")["rev"]
    assert ok_json(address, "schema", "show", "cli-orders", "--json")["mode"] == "FULL"


def test_worker_schema_options_are_checked(tmp_path: Path) -> None:
    bad_schema = tmp_path / "bad.json"
    bad_schema.write_text('{"type": "strnig"}')
    bad_version, bad_file, unsubscribed, invalid = cli_many(
        None,
        ["worker", "--id", "w", "--ns", "a", "--state-dir", str(tmp_path / "w"), "--versions", "a"],
        ["worker", "--id", "w", "--ns", "a", "--state-dir", str(tmp_path), "--schema", "a@1=/no"],
        ["worker", "--id", "w", "--ns", "a", "--state-dir", str(tmp_path), "--versions", "b=1"],
        [
            "worker",
            "--id",
            "w",
            "--ns",
            "a",
            "--state-dir",
            str(tmp_path),
            "--schema",
            f"a@1={bad_schema}",
        ],
    )
    assert bad_version.returncode == 4 and "NS=V" in bad_version.stderr
    assert bad_file.returncode == 4 and "/no" in bad_file.stderr
    assert unsubscribed.returncode == 4 and "unsubscribed" in unsubscribed.stderr
    assert invalid.returncode == 4 and "schema path '/type'" in invalid.stderr


def test_a_full_snapshot_leaves_contracts_out_unless_named(server: Server, tmp_path: Path) -> None:
    ok_json(server.address, "schema", "register", "snap-orders", V1)
    ok_json(server.address, "put", "snap-orders", "o1", '{"item": "pen", "qty": 2}')
    everything, contracts = tmp_path / "all.jsonl", tmp_path / "contracts.jsonl"
    ok_json(server.address, "snapshot", "--out", str(everything))
    ok_json(server.address, "snapshot", "--out", str(contracts), "--ns", "_contracts")
    lines = [json.loads(line) for line in everything.read_text().splitlines()[1:]]
    assert {"snap-orders"} <= {line["ns"] for line in lines}
    assert "_contracts" not in {line["ns"] for line in lines}
    named = [json.loads(line) for line in contracts.read_text().splitlines()[1:]]
    assert "snap-orders" in {line["key"] for line in named}
