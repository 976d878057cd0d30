"""Regenerate the language-neutral conformance vectors from the Python reference.

    python conformance/generate.py            # rewrite the vector files in place
    python conformance/generate.py --out DIR  # write them under DIR instead

The output is deterministic: re-running it gives byte-identical files, and
tests/test_conformance.py fails when the checked-in files are stale. Expected
canonical bytes come from `rfc8785` (the reference encoder), never from the
native encoder behind `statesync.core.canonical`. conformance/README.md documents
the file formats; docs/digest.md and docs/log-format.md are the normative text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import behaviour_vectors
import compat_vectors
import descent_vectors
import errors_vectors
import patch_vectors
import rfc8785
import translate_vectors
import validate_vectors

from statesync.core.canonical import parse_json
from statesync.core.digest import (
    NamespaceDigest,
    fingerprint,
    leaf_value,
    position,
    value_hash,
)
from statesync.core.errors import InvalidValueError
from statesync.core.model import GENESIS_HASH, ChangeOp, chain_hash, change_canonical_bytes

HERE = Path(__file__).resolve().parent
FORMAT_VERSION = 1
_WIDTH = 100

# -- canonical JSON (RFC 8785) ------------------------------------------------

# (name, JSON text). Every input parses under parse_json's I-JSON rules.
CANONICAL_VALID: list[tuple[str, str]] = [
    ("null", "null"),
    ("true", "true"),
    ("false", "false"),
    ("zero", "0"),
    ("negative zero integer", "-0"),
    ("max safe integer", "9007199254740991"),
    ("min safe integer", "-9007199254740991"),
    ("integer with exponent is a float", "1E3"),
    ("float with zero fraction", "1.0"),
    ("float 100e-2", "100e-2"),
    ("float 0.1", "0.1"),
    ("float 0.1 + 0.2", "0.30000000000000004"),
    ("float 4.50", "4.50"),
    ("float 1e21 (first exponent form)", "1e21"),
    ("float 1e23", "1e23"),
    ("float 1e15 (integral, within the safe range)", "1e15"),
    ("float 2**53-1 (largest integral float allowed below 1e21)", "9007199254740991.0"),
    ("float 1e-6 (last fixed form)", "0.000001"),
    ("float 1e-7 (first exponent form)", "1e-7"),
    ("float negative zero", "-0.0"),
    ("float smallest subnormal", "5e-324"),
    ("float largest finite", "1.7976931348623157e308"),
    ("float negative with exponent", "-1.5e-10"),
    ("float 333333333.33333329", "333333333.33333329"),
    ("float 2e-3", "2e-3"),
    ("float 1E30", "1E30"),
    ("empty string", '""'),
    ("short escapes", r'"\b\f\n\r\t\"\\"'),
    ("solidus is not escaped", r'"\/ and /"'),
    ("control characters", r'"\u0000\u0001\u001f\u0007\u000b"'),
    ("DEL and C1 controls are not escaped", r'"\u007f\u0080\u009f"'),
    ("line and paragraph separators are not escaped", r'"\u2028\u2029"'),
    ("escaped BMP characters are written as UTF-8", r'"\u00e9\u20ac\uffff"'),
    ("raw non-ASCII characters", '"é€日本"'),
    ("surrogate pair escape becomes 4 UTF-8 bytes", r'"\ud83d\ude00"'),
    ("private use characters", r'"\ue000\uf8ff\udbff\udfff"'),
    ("empty object", "{}"),
    ("empty array", "[]"),
    ("whitespace is dropped", ' { "a" : [ 1 , 2 ] ,\n\t"b" : { } } \r\n'),
    ("object members sort", '{"b": 1, "a": 2, "aa": 3, "A": 4, "": 5, "a\\u0000": 6}'),
    (
        "UTF-16 order: U+1F600 sorts before U+E000",
        r'{"\ue000": "private use", "\ud83d\ude00": "grinning face"}',
    ),
    (
        "UTF-16 order: U+10000 sorts before U+FFFF",
        r'{"\uffff": 1, "\ud800\udc00": 2, "\ud7ff": 3}',
    ),
    (
        "RFC 8785 section 3.2.3 sorting example",
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", '
        '"\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", '
        '"\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", '
        '"\\u00f6": "Latin Small Letter O With Diaeresis"}',
    ),
    (
        "RFC 8785 section 3.2.2 example",
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], '
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", '
        '"literals": [null, true, false]}',
    ),
    (
        "nested objects and arrays",
        '{"z": [{"b": [3, 2, 1], "a": {"y": null, "x": [true, false]}}, []], '
        '"m": {"\\u00e9": {"d": {"c": {}}}}, "a": [[[["deep"]]]]}',
    ),
    ("array order is kept", '[3, "b", "a", 1, {"b": 0, "a": 0}]'),
]

# (name, JSON text or None, raw bytes as hex or None, error kind).
CANONICAL_INVALID: list[tuple[str, str | None, str | None, str]] = [
    ("duplicate key", '{"a": 1, "a": 2}', None, "duplicate_key"),
    ("duplicate key, same value", '{"a": 1, "a": 1}', None, "duplicate_key"),
    ("nested duplicate key", '{"x": [{"b": 1, "c": 2, "b": 3}]}', None, "duplicate_key"),
    ("duplicate key after unescaping", '{"a": 1, "\\u0061": 2}', None, "duplicate_key"),
    ("integer 2**53", "9007199254740992", None, "integer_out_of_range"),
    ("integer -(2**53)", "-9007199254740992", None, "integer_out_of_range"),
    ("nested large integer", '{"n": [1, 18446744073709551616]}', None, "integer_out_of_range"),
    ("float 2**53 prints as an unsafe integer", "9007199254740992.0", None, "integer_out_of_range"),
    ("float 1e20 prints as an unsafe integer", "1e20", None, "integer_out_of_range"),
    ("float -1e17 prints as an unsafe integer", "-1E17", None, "integer_out_of_range"),
    ("number overflowing a double", "1e400", None, "number_out_of_range"),
    ("NaN literal", "NaN", None, "malformed"),
    ("Infinity literal", '{"x": Infinity}', None, "malformed"),
    ("-Infinity literal", "[-Infinity]", None, "malformed"),
    ("lone high surrogate", r'"\ud800"', None, "lone_surrogate"),
    ("lone low surrogate", r'"\udc00"', None, "lone_surrogate"),
    ("high surrogate followed by a non-surrogate", r'"\ud800a"', None, "lone_surrogate"),
    ("lone surrogate in a key", r'{"\udbff": 1}', None, "lone_surrogate"),
    ("invalid UTF-8 byte", None, "22ff22", "invalid_utf8"),
    ("UTF-8 encoded surrogate", None, "22eda08022", "invalid_utf8"),
    ("byte order mark", "\ufeff{}", None, "malformed"),
    ("trailing comma", '{"a": 1,}', None, "malformed"),
    ("leading zero", "[01]", None, "malformed"),
    ("single quotes", "{'a': 1}", None, "malformed"),
    ("raw control character in a string", '"a\tb"', None, "malformed"),
    ("empty text", "", None, "malformed"),
    ("two values", "[1] [2]", None, "malformed"),
]


def _hex(data: bytes) -> str:
    return data.hex()


def _canonical_vectors() -> dict[str, Any]:
    valid = []
    for name, text in CANONICAL_VALID:
        canonical = rfc8785.dumps(parse_json(text))
        valid.append(
            {
                "name": name,
                "input": text,
                "canonical": canonical.decode("utf-8"),
                "canonical_hex": _hex(canonical),
                "sha256": hashlib.sha256(canonical).hexdigest(),
            }
        )
    invalid = []
    for name, text, raw_hex, kind in CANONICAL_INVALID:
        raw = bytes.fromhex(raw_hex) if raw_hex is not None else text.encode("utf-8")
        try:
            parse_json(raw)
        except InvalidValueError:
            pass
        else:  # pragma: no cover - a broken vector table
            raise SystemExit(f"invalid vector {name!r} parsed without error")
        vector: dict[str, Any] = {"name": name, "input": text}
        if raw_hex is not None:
            vector["input_hex"] = raw_hex
        vector["error"] = kind
        invalid.append(vector)
    return {
        "description": "RFC 8785 (JCS) canonical bytes of I-JSON values; see conformance/README.md",
        "format_version": FORMAT_VERSION,
        "valid": valid,
        "invalid": invalid,
    }


# -- digests ------------------------------------------------------------------

Items = list[dict[str, Any]]

SMALL_ITEMS: Items = [
    {"key": "a", "value": 1},
    {"key": "user/42", "value": {"name": "Ada", "roles": ["admin", "dev"], "quota": 1.5}},
    {"key": "ключ", "value": "значение"},
    {"key": "\U0001f511", "value": None},
    {"key": 'say "hi"\\', "value": [True, False, {}, []]},
]


def _numbered(n: int, *, version: int = 1) -> Items:
    return [{"key": f"user:{i:04d}", "value": {"id": i, "v": version}} for i in range(n)]


def _vhash(value: Any) -> bytes:
    return value_hash(rfc8785.dumps(value))


def _pairs(items: Items) -> dict[str, bytes]:
    pairs = {item["key"]: _vhash(item["value"]) for item in items}
    if len(pairs) != len(items):  # pragma: no cover - a broken vector table
        raise SystemExit("duplicate key in a digest vector")
    return pairs


def _leaves_of(pairs: dict[str, bytes]) -> Callable[[str], dict[str, bytes]]:
    def leaves(prefix: str) -> dict[str, bytes]:
        return {k: v for k, v in pairs.items() if position(k).hex().startswith(prefix)}

    return leaves


def _node_vector(digest: NamespaceDigest, pairs: dict[str, bytes], prefix: str) -> dict[str, Any]:
    node = digest.node(prefix, _leaves_of(pairs))
    return {
        "prefix": prefix,
        "count": node.count,
        "sum": node.sum.to_bytes(32, "big").hex(),
        "fingerprint": node.fingerprint.hex(),
    }


def _digest_case(name: str, items: Items, extra_prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    pairs = _pairs(items)
    digest = NamespaceDigest.from_items(pairs.items())
    out_items = []
    for item in items:
        canonical = rfc8785.dumps(item["value"])
        vhash = value_hash(canonical)
        out_items.append(
            {
                "key": item["key"],
                "value": item["value"],
                "canonical": canonical.decode("utf-8"),
                "value_hash": vhash.hex(),
                "position": position(item["key"]).hex(),
                "leaf": leaf_value(item["key"], vhash).to_bytes(32, "big").hex(),
            }
        )
    prefixes = list(dict.fromkeys(["", "a", "3f", *extra_prefixes]))
    return {
        "name": name,
        "items": out_items,
        "count": digest.count,
        "root": digest.root().hex(),
        "nodes": [_node_vector(digest, pairs, p) for p in prefixes],
    }


def _busiest(items: Items, depth: int) -> str:
    """The prefix of `depth` nibbles holding the most keys (the lowest on a tie)."""
    counts: dict[str, int] = {}
    for item in items:
        prefix = position(item["key"]).hex()[:depth]
        counts[prefix] = counts.get(prefix, 0) + 1
    return min(counts, key=lambda p: (-counts[p], p))


def _digest_cases() -> list[dict[str, Any]]:
    many = _numbered(64)
    first = position(many[0]["key"]).hex()
    busiest = [_busiest(many, depth) for depth in (1, 2, 3, 5)]
    small_first = position(SMALL_ITEMS[0]["key"]).hex()
    changed = [dict(item) for item in SMALL_ITEMS]
    changed[0] = {"key": "a", "value": 2}
    return [
        _digest_case("empty namespace", []),
        _digest_case("one key", [{"key": "a", "value": 1}], (small_first[:1], small_first[:6])),
        _digest_case("five keys", SMALL_ITEMS, (small_first[:2], small_first[:5])),
        _digest_case("five keys, same order reversed", SMALL_ITEMS[::-1]),
        _digest_case("five keys, one value changed", changed),
        _digest_case(
            "64 keys",
            many,
            ("0", "00", "f", *busiest, first[:2], first[:4], first[:5], first[:8], first),
        ),
    ]


def _differing_case(name: str, a: Items, b: Items) -> dict[str, Any]:
    pa, pb = _pairs(a), _pairs(b)
    found = {k for k in pa.keys() | pb.keys() if pa.get(k) != pb.get(k)}
    return {"name": name, "a": a, "b": b, "expected": sorted(found)}


def _differing_cases() -> list[dict[str, Any]]:
    base = _numbered(300)
    edited = [dict(item) for item in base]
    edited[7] = {**edited[7], "value": {**edited[7]["value"], "v": 2}}
    del edited[150]
    edited.append({"key": "user:9999", "value": {"id": 9999, "v": 1}})
    return [
        _differing_case("both empty", [], []),
        _differing_case("identical", SMALL_ITEMS, SMALL_ITEMS[::-1]),
        _differing_case("one empty", SMALL_ITEMS, []),
        _differing_case(
            "value changed, key only in a, key only in b",
            [{"key": "x", "value": 1}, {"key": "y", "value": 2}, {"key": "z", "value": 3}],
            [{"key": "x", "value": 1}, {"key": "y", "value": 20}, {"key": "w", "value": 3}],
        ),
        _differing_case(
            '1 and 1.0 have the same canonical bytes, 1 and "1" do not',
            [{"key": "n", "value": 1}, {"key": "s", "value": "1"}],
            [{"key": "n", "value": 1.0}, {"key": "s", "value": 1}],
        ),
        _differing_case("300 keys, 3 differ", base, edited),
        _differing_case("300 keys, all values differ", base, _numbered(300, version=2)),
    ]


def _digest_vectors() -> dict[str, Any]:
    return {
        "description": "Per-namespace digests (docs/digest.md); see conformance/README.md",
        "format_version": FORMAT_VERSION,
        "empty_root": fingerprint(0, 0).hex(),
        "cases": _digest_cases(),
        "differing_keys": _differing_cases(),
    }


# -- the log ------------------------------------------------------------------

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CHANGES: list[dict[str, Any]] = [
    {
        "command_id": "cmd-0001",
        "create_rev": 1,
        "key": "feature/flags",
        "ns": "config",
        "op": "put",
        "prev_mod_rev": 0,
        "rev": 1,
        "seq": 0,
        "trace": TRACE,
        "ts_ms": 1700000000000,
        "value": {"limit": 100, "beta": True},
        "version": 1,
    },
    {
        "command_id": "cmd-0002",
        "create_rev": 1,
        "key": "feature/flags",
        "ns": "config",
        "op": "put",
        "prev_mod_rev": 1,
        "rev": 2,
        "seq": 0,
        "trace": None,
        "ts_ms": 1700000000250,
        "value": {"limit": 250, "beta": False, "ratio": 0.1},
        "version": 2,
    },
    {
        "command_id": "cmd-0002",
        "create_rev": 2,
        "key": 'ü/\U0001f642 "quoted" \\ \u0001',
        "ns": "users.eu-1",
        "op": "put",
        "prev_mod_rev": 0,
        "rev": 2,
        "seq": 1,
        "trace": None,
        "ts_ms": 1700000000250,
        "value": ["\u20ac", "\u2028", 1e21, -0.0, {"\ue000": 1, "\U0001f600": 2}],
        "version": 1,
    },
    {
        "command_id": "cmd-0003",
        "create_rev": 0,
        "key": "feature/flags",
        "ns": "config",
        "op": "delete",
        "prev_mod_rev": 2,
        "rev": 3,
        "seq": 0,
        "trace": TRACE,
        "ts_ms": 1700000001000,
        "value": None,
        "version": 0,
    },
    {
        "command_id": "cmd-0004",
        "create_rev": 4,
        "key": "feature/flags",
        "ns": "config",
        "op": "put",
        "prev_mod_rev": 0,
        "rev": 4,
        "seq": 0,
        "trace": None,
        "ts_ms": 1700000002000,
        "value": None,
        "version": 1,
    },
]


def change_bytes(fields: dict[str, Any]) -> bytes:
    """The canonical change through `change_canonical_bytes` (the fast builder)."""
    op = ChangeOp(fields["op"])
    return change_canonical_bytes(
        rev=fields["rev"],
        seq=fields["seq"],
        namespace=fields["ns"],
        key=fields["key"],
        op=op,
        value=rfc8785.dumps(fields["value"]) if op is ChangeOp.PUT else None,
        prev_mod_rev=fields["prev_mod_rev"],
        create_rev=fields["create_rev"],
        version=fields["version"],
        command_id=fields["command_id"],
        ts_ms=fields["ts_ms"],
        trace=fields["trace"],
    )


def _chain(name: str, anchor: bytes, changes: list[dict[str, Any]]) -> dict[str, Any]:
    prev = anchor
    out = []
    for fields in changes:
        canonical = rfc8785.dumps(fields)
        if change_bytes(fields) != canonical:  # pragma: no cover - the builder is wrong
            raise SystemExit(f"change_canonical_bytes disagrees with rfc8785 in {name!r}")
        digest = chain_hash(prev, canonical)
        out.append(
            {
                "change": fields,
                "canonical": canonical.decode("utf-8"),
                "canonical_hex": _hex(canonical),
                "prev_hash": prev.hex(),
                "hash": digest.hex(),
            }
        )
        prev = digest
    return {"name": name, "anchor": anchor.hex(), "changes": out, "head": prev.hex()}


def _log_vectors() -> dict[str, Any]:
    full = _chain("from genesis", GENESIS_HASH, CHANGES)
    # Compaction at revision 2 anchors the chain at the hash of the last change
    # at or below revision 2 (rev 2, seq 1); verification resumes from there.
    anchor = bytes.fromhex(full["changes"][2]["hash"])
    tail = _chain("after compaction at revision 2", anchor, CHANGES[3:])
    tail["compacted_rev"] = 2
    return {
        "description": "Change records and the hash chain (docs/log-format.md)",
        "format_version": FORMAT_VERSION,
        "genesis_prev_hash": GENESIS_HASH.hex(),
        "chains": [full, tail],
    }


# -- output -------------------------------------------------------------------


def render(obj: Any, indent: int = 0) -> str:
    """Deterministic JSON: a value fitting the width on one line stays there."""
    flat = json.dumps(obj, ensure_ascii=True, separators=(", ", ": "), allow_nan=False)
    if not isinstance(obj, dict | list) or not obj or indent + len(flat) <= _WIDTH:
        return flat
    pad = " " * (indent + 2)
    if isinstance(obj, dict):
        members = [
            f"{pad}{json.dumps(k, ensure_ascii=True)}: {render(v, indent + 2)}"
            for k, v in obj.items()
        ]
        return "{\n" + ",\n".join(members) + "\n" + " " * indent + "}"
    elements = [pad + render(v, indent + 2) for v in obj]
    return "[\n" + ",\n".join(elements) + "\n" + " " * indent + "]"


def vector_files() -> dict[str, str]:
    """Each vector file's path (relative to conformance/) and text."""
    return {
        "canonical/vectors.json": render(_canonical_vectors()) + "\n",
        "digest/vectors.json": render(_digest_vectors()) + "\n",
        "descent/vectors.json": render(descent_vectors.build()) + "\n",
        "log/vectors.json": render(_log_vectors()) + "\n",
        "patch/vectors.json": render(patch_vectors.build()) + "\n",
        "compat/vectors.json": render(compat_vectors.build()) + "\n",
        "translate/vectors.json": render(translate_vectors.build()) + "\n",
        "validate/vectors.json": render(validate_vectors.build()) + "\n",
        "behaviour/vectors.json": render(behaviour_vectors.build()) + "\n",
        "errors/vectors.json": render(errors_vectors.build()) + "\n",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into")
    args = parser.parse_args(argv)
    for rel, text in vector_files().items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("ascii"))


if __name__ == "__main__":
    main()
