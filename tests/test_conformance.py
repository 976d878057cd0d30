"""statesync against its own language-neutral conformance vectors (conformance/).

Each vector file is checked the way another language would run it (see
conformance/README.md), plus: the files must equal what conformance/generate.py
produces now, and Hypothesis properties that hold the native canonical encoder
equal to the `rfc8785` reference and canonical bytes parseable back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
import rfc8785
from digest_descent import differing_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from patching import apply_patch

import statesync._native as _native
from statesync.contracts.registry import SchemaValidator
from statesync.core import errors as errors_module
from statesync.core import reconcile
from statesync.core.canonical import (
    MAX_SAFE_INTEGER,
    canonical_bytes,
    check_value,
    parse_json,
)
from statesync.core.commands import Limits
from statesync.core.digest import (
    NamespaceDigest,
    fingerprint,
    leaf_value,
    position,
    value_hash,
)
from statesync.core.errors import (
    InvalidPatchError,
    InvalidValueError,
    RemoteError,
    SchemaViolationError,
    StatesyncError,
)
from statesync.core.model import (
    GENESIS_HASH,
    Change,
    ChangeOp,
    chain_hash,
    change_canonical_bytes,
)
from statesync.v1 import statesync_pb2 as pb
from statesync.wire import error_from_pb

CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"
VECTOR_FILES = (
    "canonical/vectors.json",
    "digest/vectors.json",
    "descent/vectors.json",
    "log/vectors.json",
    "patch/vectors.json",
    "compat/vectors.json",  # run by tests/test_contracts_compat.py
    "translate/vectors.json",  # run by tests/test_contracts_translate.py
    "validate/vectors.json",
    "behaviour/vectors.json",  # run by tests/test_behaviour.py
    "errors/vectors.json",
)


def _load(rel: str) -> dict[str, Any]:
    return json.loads((CONFORMANCE / rel).read_text(encoding="ascii"))


CANONICAL = _load("canonical/vectors.json")
DIGEST = _load("digest/vectors.json")
DESCENT = _load("descent/vectors.json")
LOG = _load("log/vectors.json")
PATCH = _load("patch/vectors.json")
VALIDATE = _load("validate/vectors.json")
ERRORS = _load("errors/vectors.json")


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


# -- canonical JSON -----------------------------------------------------------


@pytest.mark.parametrize("vector", CANONICAL["valid"], ids=_ids(CANONICAL["valid"]))
def test_canonical_valid(vector: dict[str, Any]) -> None:
    expected = bytes.fromhex(vector["canonical_hex"])
    assert vector["canonical"].encode("utf-8") == expected
    assert hashlib.sha256(expected).hexdigest() == vector["sha256"]
    value = parse_json(vector["input"])
    assert parse_json(vector["input"].encode("utf-8")) == value
    assert rfc8785.dumps(value) == expected
    assert canonical_bytes(value) == expected
    # Canonical bytes are a fixed point.
    assert canonical_bytes(parse_json(expected)) == expected


_ERROR_MESSAGES = {
    "duplicate_key": "duplicate object key",
    "integer_out_of_range": "outside the I-JSON range",
    "number_out_of_range": "is not finite",
    "lone_surrogate": "lone surrogate",
    "invalid_utf8": "not valid UTF-8",
    "malformed": "malformed JSON",
}


@pytest.mark.parametrize("vector", CANONICAL["invalid"], ids=_ids(CANONICAL["invalid"]))
def test_canonical_invalid(vector: dict[str, Any]) -> None:
    if vector.get("input_hex") is not None:
        raw = bytes.fromhex(vector["input_hex"])
    else:
        raw = vector["input"].encode("utf-8", "surrogatepass")
    assert vector["error"] in _ERROR_MESSAGES
    with pytest.raises(InvalidValueError, match=_ERROR_MESSAGES[vector["error"]]):
        parse_json(raw)
    if vector["input"] is not None:
        with pytest.raises(InvalidValueError, match=_ERROR_MESSAGES[vector["error"]]):
            parse_json(vector["input"])


def test_canonical_vectors_cover_the_brief() -> None:
    inputs = {v["input"] for v in CANONICAL["valid"]}
    for text in ("1e21", "1e-7", "0.1", "-0.0", "5e-324", "1.7976931348623157e308"):
        assert text in inputs
    kinds = {v["error"] for v in CANONICAL["invalid"]}
    assert {"duplicate_key", "integer_out_of_range", "malformed", "lone_surrogate"} <= kinds


# -- digests ------------------------------------------------------------------

Leaves = Callable[[str], Mapping[str, bytes]]


def _pairs(items: list[dict[str, Any]]) -> dict[str, bytes]:
    return {item["key"]: value_hash(canonical_bytes(item["value"])) for item in items}


def _leaves(pairs: dict[str, bytes]) -> Leaves:
    positions = {k: position(k).hex() for k in pairs}

    def leaves(prefix: str) -> dict[str, bytes]:
        return {k: v for k, v in pairs.items() if positions[k].startswith(prefix)}

    return leaves


def test_empty_root() -> None:
    assert NamespaceDigest().root().hex() == DIGEST["empty_root"]
    assert fingerprint(0, 0).hex() == DIGEST["empty_root"]


@pytest.mark.parametrize("case", DIGEST["cases"], ids=_ids(DIGEST["cases"]))
def test_digest_case(case: dict[str, Any]) -> None:
    for item in case["items"]:
        canonical = item["canonical"].encode("utf-8")
        assert rfc8785.dumps(item["value"]) == canonical
        assert canonical_bytes(item["value"]) == canonical
        vhash = value_hash(canonical)
        assert vhash.hex() == item["value_hash"]
        assert position(item["key"]).hex() == item["position"]
        assert leaf_value(item["key"], vhash) == int(item["leaf"], 16)
    pairs = _pairs(case["items"])
    built = NamespaceDigest.from_items(pairs.items())
    assert built.count == case["count"]
    assert built.root().hex() == case["root"]
    # The same root, built one update at a time, in the listed and in reverse order.
    for order in (list(pairs.items()), list(pairs.items())[::-1]):
        incremental = NamespaceDigest()
        for key, vhash in order:
            incremental.update(key, None, vhash)
        assert incremental.root().hex() == case["root"]
    for vector in case["nodes"]:
        node = built.node(vector["prefix"], _leaves(pairs))
        assert node.count == vector["count"]
        assert node.sum == int(vector["sum"], 16)
        assert node.fingerprint.hex() == vector["fingerprint"]
        assert fingerprint(vector["count"], int(vector["sum"], 16)).hex() == vector["fingerprint"]
    assert case["nodes"][0]["prefix"] == ""
    assert case["nodes"][0]["fingerprint"] == case["root"]


@pytest.mark.parametrize("case", DIGEST["differing_keys"], ids=_ids(DIGEST["differing_keys"]))
def test_differing_keys(case: dict[str, Any]) -> None:
    pa, pb = _pairs(case["a"]), _pairs(case["b"])
    da, db = NamespaceDigest.from_items(pa.items()), NamespaceDigest.from_items(pb.items())
    found, stats = differing_keys(da, _leaves(pa), db, _leaves(pb))
    assert sorted(found) == case["expected"]
    back, _ = differing_keys(db, _leaves(pb), da, _leaves(pa))
    assert back == found
    assert (da.root() == db.root()) == (not case["expected"])
    if not case["expected"]:
        assert stats.nodes_compared == 1
    if len(case["a"]) >= 300:
        assert stats.levels > 2  # the case exercises a real descent


# -- digest descent: what a worker answers ------------------------------------


def _digest_of(items: list[dict[str, Any]]) -> tuple[NamespaceDigest, Leaves]:
    pairs = _pairs(items)
    return NamespaceDigest.from_items(pairs.items()), _leaves(pairs)


def test_descent_leaf_limit() -> None:
    assert DESCENT["format_version"] == 1
    assert DESCENT["leaf_limit"] == reconcile.LEAF_LIMIT


@pytest.mark.parametrize("case", DESCENT["answers"], ids=_ids(DESCENT["answers"]))
def test_descent_answer(case: dict[str, Any]) -> None:
    digest, leaves = _digest_of(case["items"])
    answers = reconcile.describe(digest, leaves, case["prefixes"])
    assert [a.prefix for a in answers] == case["prefixes"]  # one per prefix, in query order
    for a, node in zip(answers, case["nodes"], strict=True):
        assert a.is_leaves is node["is_leaves"]
        assert a.children.hex() == node["children"]
        assert a.leaves.hex() == node["leaves"]
        assert digest.node(a.prefix, leaves).count == node["count"]
        if a.is_leaves:
            packed = [a.leaves[i : i + 4] for i in range(0, len(a.leaves), 4)]
            assert packed == sorted(packed) and len(packed) == node["count"]
        else:  # 16 x (u32be count, the first 4 bytes of the child's fingerprint)
            assert len(a.children) == 128
            for i, nibble in enumerate("0123456789abcdef"):
                child = digest.node(a.prefix + nibble, leaves)
                entry = a.children[8 * i : 8 * i + 8]
                assert entry == child.count.to_bytes(4, "big") + child.fingerprint[:4]


@pytest.mark.parametrize("case", DESCENT["names"], ids=_ids(DESCENT["names"]))
def test_descent_names(case: dict[str, Any]) -> None:
    _, leaves = _digest_of(case["items"])
    wanted = bytes.fromhex(case["leaves"])
    assert reconcile.name(leaves, case["prefix"], wanted) == case["names"]


@pytest.mark.parametrize("case", DESCENT["descents"], ids=_ids(DESCENT["descents"]))
def test_descent_transcript(case: dict[str, Any]) -> None:
    """The reference controller against the reference worker, round by round."""
    ours, our_leaves = _digest_of(case["controller"])
    theirs, their_leaves = _digest_of(case["worker"])
    descent = reconcile.Descent("conformance")
    for expected in case["rounds"]:
        assert not descent.done
        prefixes, unknown = descent.query()
        assert prefixes == expected["prefixes"]
        assert [{"prefix": p, "leaves": v.hex()} for p, v in unknown] == expected["names"]
        answers = reconcile.describe(theirs, their_leaves, prefixes)
        assert [
            {
                "prefix": a.prefix,
                "count": theirs.node(a.prefix, their_leaves).count,
                "is_leaves": a.is_leaves,
                "children": a.children.hex(),
                "leaves": a.leaves.hex(),
            }
            for a in answers
        ] == expected["nodes"]
        named = [n for p, v in unknown for n in reconcile.name(their_leaves, p, v)]
        assert named == expected["named"]
        descent.receive(answers, named, lambda p: ours.node(p, our_leaves), our_leaves)
    assert descent.done
    assert sorted(descent.differing) == case["differing"]
    assert (ours.root() == theirs.root()) == (not case["differing"])


# -- the log ------------------------------------------------------------------


def _change_bytes(fields: dict[str, Any]) -> bytes:
    op = ChangeOp(fields["op"])
    return change_canonical_bytes(
        rev=fields["rev"],
        seq=fields["seq"],
        namespace=fields["ns"],
        key=fields["key"],
        op=op,
        value=canonical_bytes(fields["value"]) if op is ChangeOp.PUT else None,
        prev_mod_rev=fields["prev_mod_rev"],
        create_rev=fields["create_rev"],
        version=fields["version"],
        command_id=fields["command_id"],
        ts_ms=fields["ts_ms"],
        trace=fields["trace"],
    )


def test_log_genesis() -> None:
    assert LOG["genesis_prev_hash"] == GENESIS_HASH.hex() == "00" * 32
    assert LOG["chains"][0]["anchor"] == LOG["genesis_prev_hash"]


@pytest.mark.parametrize("chain", LOG["chains"], ids=_ids(LOG["chains"]))
def test_log_chain(chain: dict[str, Any]) -> None:
    prev = bytes.fromhex(chain["anchor"])
    for vector in chain["changes"]:
        fields = vector["change"]
        expected = bytes.fromhex(vector["canonical_hex"])
        assert vector["canonical"].encode("utf-8") == expected
        assert sorted(fields) == list(fields)  # members listed in canonical order
        assert rfc8785.dumps(fields) == expected
        assert _change_bytes(fields) == expected
        assert vector["prev_hash"] == prev.hex()
        digest = chain_hash(prev, expected)
        assert digest.hex() == vector["hash"]
        assert hashlib.sha256(prev + expected).digest() == digest
        change = Change(
            rev=fields["rev"],
            seq=fields["seq"],
            namespace=fields["ns"],
            key=fields["key"],
            op=ChangeOp(fields["op"]),
            value=canonical_bytes(fields["value"]) if fields["op"] == "put" else None,
            prev_mod_rev=fields["prev_mod_rev"],
            create_rev=fields["create_rev"],
            version=fields["version"],
            command_id=fields["command_id"],
            ts_ms=fields["ts_ms"],
            trace=fields["trace"],
            hash=digest,
        )
        assert change.canonical() == expected
        prev = digest
    assert prev.hex() == chain["head"]


def test_log_anchor_after_compaction() -> None:
    full, tail = LOG["chains"]
    compacted = tail["compacted_rev"]
    at_or_below = [c for c in full["changes"] if c["change"]["rev"] <= compacted]
    assert tail["anchor"] == at_or_below[-1]["hash"]
    assert tail["head"] == full["head"]


# -- JSON Patch -----------------------------------------------------------------

_NO_LIMIT = Limits(max_value_bytes=1 << 62)


def _patched(vector: dict[str, Any]) -> bytes:
    """The vector applied as a command's patch op is: checked, then applied."""
    return apply_patch("ns", "k", canonical_bytes(vector["document"]), vector["patch"], _NO_LIMIT)


@pytest.mark.parametrize("vector", PATCH["vectors"], ids=_ids(PATCH["vectors"]))
def test_patch_vector(vector: dict[str, Any]) -> None:
    expected = vector["canonical"].encode("utf-8")
    assert _patched(vector) == expected
    assert canonical_bytes(parse_json(expected)) == expected


@pytest.mark.parametrize("vector", PATCH["failures"], ids=_ids(PATCH["failures"]))
def test_patch_failure(vector: dict[str, Any]) -> None:
    with pytest.raises(_native.PatchRefused) as refused:
        checked = _native.check_patch(vector["patch"])
        _native.apply_patch(canonical_bytes(vector["document"]), checked, 1 << 62)
    assert refused.value.args[:2] == (vector["error"], vector["op_index"])
    with pytest.raises(InvalidPatchError) as info:
        _patched(vector)
    assert (info.value.namespace, info.value.key) == ("ns", "k")
    assert info.value.op_index == vector["op_index"]


def test_patch_vectors_cover_the_brief() -> None:
    names = {v["name"] for v in PATCH["vectors"]}
    assert {"add 1.0 gives 1", "add the whole document", "move a member to the root"} <= names
    kinds = {v["error"] for v in PATCH["failures"]}
    assert {"not_found", "test_failed", "conflict", "too_deep", "bad_pointer"} <= kinds


# -- the files are up to date -------------------------------------------------


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize("vector", ERRORS["vectors"], ids=_ids(ERRORS["vectors"]))
def test_error_vector(vector: dict[str, Any]) -> None:
    """The Python client decodes each failed call as docs/errors.md says."""
    sent = vector["error"]
    wire = pb.Error.FromString(base64.b64decode(vector["error_bin"]))
    assert (wire.code, wire.message, wire.retryable) == (
        sent["code"],
        sent["message"],
        sent["retryable"],
    )
    assert (json.loads(wire.detail) if wire.detail else None) == sent["detail"]
    error = error_from_pb(wire)
    expect = vector["expect"]
    assert type(error).__name__ == expect["code"]
    assert [c.__name__ for c in type(error).__mro__ if issubclass(c, StatesyncError)] == expect[
        "is"
    ]
    assert error.retryable == expect["retryable"]
    assert error.exit_code == expect["exit"]
    if expect["known"]:
        assert error.grpc_status == vector["grpc_status"]["name"]
        assert grpc.StatusCode[error.grpc_status].value[0] == vector["grpc_status"]["code"]
        for field, value in sent["detail"].items():
            if field not in ("error", "message", "failed", "violations"):
                assert getattr(error, field) == value, field
    else:
        assert isinstance(error, RemoteError) and error.code == sent["code"]


def test_error_vectors_cover_every_code_sent() -> None:
    sent = {v["error"]["code"] for v in ERRORS["vectors"] if v["expect"]["known"]}
    client_only = {"StatesyncError", "InvalidInputError", "UnavailableError", "RemoteError"}
    codes = {
        name
        for name in errors_module.__all__
        if isinstance(getattr(errors_module, name), type)
        and issubclass(getattr(errors_module, name), StatesyncError)
    }
    assert sent == codes - client_only


def test_vector_files_are_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(CONFORMANCE / "generate.py"), "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    for rel in VECTOR_FILES:
        fresh = (tmp_path / rel).read_bytes()
        assert (CONFORMANCE / rel).read_bytes() == fresh, (
            f"conformance/{rel} is stale: run `python conformance/generate.py`"
        )
    # Deterministic: a second run gives the same bytes.
    again = tmp_path / "again"
    subprocess.run(
        [sys.executable, str(CONFORMANCE / "generate.py"), "--out", str(again)],
        check=True,
        timeout=120,
    )
    for rel in VECTOR_FILES:
        assert (again / rel).read_bytes() == (tmp_path / rel).read_bytes()


# -- properties ---------------------------------------------------------------

_TRICKY = [
    "\x00",
    "\x01",
    "\x08",
    "\x1f",
    '"',
    "\\",
    "/",
    "\x7f",
    "\x80",
    "\u2028",
    "\ud7ff",
    "\ue000",
    "\uf8ff",
    "\ufeff",
    "\uffff",
    "\U00010000",
    "\U0001f600",
    "\U000f0000",
    "\U0010ffff",
]
# Any Unicode scalar value (no lone surrogates), biased towards the tricky ones.
_chars = st.one_of(st.sampled_from(_TRICKY), st.characters(codec="utf-8"))
# Keys mostly below U+D800, where UTF-8 and UTF-16 order agree.
_low_chars = st.one_of(
    st.sampled_from(_TRICKY[:11]), st.characters(codec="utf-8", max_codepoint=0xD7FF)
)
_text = st.text(_chars, max_size=12)
_keys = st.one_of(st.text(_low_chars, max_size=8), _text)
_ints = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)


def _json(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(_keys, inner, max_size=5)
        ),
        max_leaves=20,
    )


_no_floats = _json(st.one_of(st.none(), st.booleans(), _ints, _text))


def _in_domain(f: float) -> bool:
    # Floats in (2**53-1, 1e21) print as integer literals outside ±(2**53-1), so
    # they are not I-JSON values (test_integral_float_beyond_safe_range_is_refused).
    return not MAX_SAFE_INTEGER < abs(f) < 1e21


_floats = st.floats(allow_nan=False, allow_infinity=False).filter(_in_domain)
_with_floats = _json(st.one_of(st.none(), st.booleans(), _ints, _floats, _text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_no_floats, st.dictionaries(st.text(_low_chars, max_size=8), _text, max_size=6)))
def test_canonical_equals_rfc8785(value: Any) -> None:
    check_value(value)
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_with_floats)
def test_canonical_round_trip(value: Any) -> None:
    check_value(value)
    canonical = canonical_bytes(value)
    assert canonical == rfc8785.dumps(value)
    parsed = parse_json(canonical)
    assert parsed == value
    assert canonical_bytes(parsed) == canonical


@settings(max_examples=300, deadline=None)
@given(
    key=_text,
    command_id=_text,
    trace=st.none() | _text,
    value=st.none() | _json(st.one_of(st.none(), st.booleans(), _ints, _text)),
    ints=st.lists(st.integers(0, MAX_SAFE_INTEGER), min_size=6, max_size=6),
    op=st.sampled_from(list(ChangeOp)),
)
def test_change_builder_equals_rfc8785(
    key: str, command_id: str, trace: str | None, value: Any, ints: list[int], op: ChangeOp
) -> None:
    rev, seq, prev_mod_rev, create_rev, version, ts_ms = ints
    fields = {
        "command_id": command_id,
        "create_rev": create_rev,
        "key": key,
        "ns": "ns",
        "op": op.value,
        "prev_mod_rev": prev_mod_rev,
        "rev": rev,
        "seq": seq,
        "trace": trace,
        "ts_ms": ts_ms,
        "value": value if op is ChangeOp.PUT else None,
        "version": version,
    }
    assert _change_bytes(fields) == rfc8785.dumps(fields)


_small_maps = st.dictionaries(
    st.text(_chars, min_size=1, max_size=4), st.integers(0, 3), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(a=_small_maps, b=_small_maps, threshold=st.integers(1, 4))
def test_differing_keys_equals_a_full_comparison(
    a: dict[str, int], b: dict[str, int], threshold: int
) -> None:
    pa = {k: value_hash(canonical_bytes(v)) for k, v in a.items()}
    pb = {k: value_hash(canonical_bytes(v)) for k, v in b.items()}
    da, db = NamespaceDigest.from_items(pa.items()), NamespaceDigest.from_items(pb.items())
    found, _ = differing_keys(da, _leaves(pa), db, _leaves(pb), leaf_threshold=threshold)
    assert found == {k for k in a.keys() | b.keys() if pa.get(k) != pb.get(k)}


@settings(max_examples=200, deadline=None)
@given(items=_small_maps, order=st.randoms(use_true_random=False))
def test_root_is_order_independent(items: dict[str, int], order: Any) -> None:
    pairs = [(k, value_hash(canonical_bytes(v))) for k, v in items.items()]
    built = NamespaceDigest.from_items(pairs)
    shuffled = list(pairs)
    order.shuffle(shuffled)
    incremental = NamespaceDigest()
    for key, vhash in shuffled:
        incremental.update(key, None, vhash)
    assert incremental.root() == built.root()
    for key, vhash in shuffled:
        incremental.update(key, vhash, None)
    assert incremental.root().hex() == DIGEST["empty_root"]


@pytest.mark.parametrize("value", [2.0**53, 1e20, -1e17, 9.999999999999999e20])
def test_integral_float_beyond_safe_range_is_refused(value: float) -> None:
    # RFC 8785 prints these as integer literals outside the I-JSON range.
    with pytest.raises(InvalidValueError, match="integer outside the I-JSON range"):
        check_value(value)
    with pytest.raises(InvalidValueError, match="integer outside the I-JSON range"):
        check_value({"a": [value]})
    # Just inside the domain on either side.
    assert canonical_bytes(float(MAX_SAFE_INTEGER)) == b"9007199254740991"
    assert canonical_bytes(1e21) == b"1e+21"


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_accepted_float_round_trips(value: float) -> None:
    if _in_domain(value):
        canonical = canonical_bytes(value)
        assert canonical == rfc8785.dumps(value)
        assert parse_json(canonical) == value
    else:
        with pytest.raises(InvalidValueError):
            check_value(value)


# -- the specifications' worked examples are what the code computes ----------

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_digest_doc_worked_example() -> None:
    text = (DOCS / "digest.md").read_text(encoding="utf-8")
    pairs = {"a": value_hash(b"1"), "b": value_hash(b'{"x":true}')}
    digest = NamespaceDigest.from_items(pairs.items())
    root = digest.node("")
    expected = [
        DIGEST["empty_root"],
        digest.root().hex(),
        root.sum.to_bytes(32, "big").hex(),
        *(v.hex() for v in pairs.values()),
        *(position(k).hex() for k in pairs),
        *(leaf_value(k, v).to_bytes(32, "big").hex() for k, v in pairs.items()),
        *(digest.node(p).fingerprint.hex() for p in ("c", "ca", "3", "3e", "a", "3f")),
        b"statesync.leaf.v1\x00".hex(),
        b"statesync.node.v1\x00".hex(),
    ]
    for value in expected:
        assert value in text
    assert [digest.node(p).count for p in ("", "c", "3", "a")] == [2, 1, 1, 0]


def test_log_doc_worked_example() -> None:
    text = (DOCS / "log-format.md").read_text(encoding="utf-8")
    changes = LOG["chains"][0]["changes"]
    assert changes[0]["canonical"] in text
    assert f"Canonical bytes ({len(bytes.fromhex(changes[0]['canonical_hex']))} bytes" in text
    assert changes[3]["canonical"] in text
    for change in changes:
        assert change["hash"] in text


# -- schema validation ----------------------------------------------------------


@pytest.mark.parametrize("vector", VALIDATE["vectors"], ids=_ids(VALIDATE["vectors"]))
def test_validation_vector(vector: dict[str, Any]) -> None:
    validator = SchemaValidator("conformance", 1, vector["schema"])
    found = [{"path": v.path, "keyword": v.keyword} for v in validator.violations(vector["value"])]
    assert found == vector["violations"]
    assert vector["valid"] is (not found)
    if found:
        with pytest.raises(SchemaViolationError) as info:
            validator.check("k", vector["value"])
        assert [v.path for v in info.value.violations] == [v["path"] for v in found]
    else:
        validator.check("k", vector["value"])
