"""Every bad input gets a typed error that names what and where, and changes nothing.

Each rejection is checked the same way (`rejects`): the error is the expected
`StatesyncError` subtype with its location fields set, its message names
them, `to_dict()` is JSON (orjson) with those fields, and the store is exactly
as before: head revision, every record, the log and the digests. A rejected
command's command_id is not remembered either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

import statesync.core.errors as errors_module
from statesync.core.canonical import MAX_SAFE_INTEGER, canonical_bytes, parse_json
from statesync.core.commands import Command, Compare, Delete, Limits, Patch, Put
from statesync.core.errors import (
    CommandIdReusedError,
    CompactedError,
    ConflictError,
    FailedCompare,
    FutureRevisionError,
    IncompatibleSchemaError,
    InvalidCommandError,
    InvalidInputError,
    InvalidKeyError,
    InvalidNamespaceError,
    InvalidPatchError,
    InvalidSchemaError,
    InvalidTranslationError,
    InvalidValueError,
    MergeConflictError,
    NotFoundError,
    NoTranslationPathError,
    ProtocolError,
    RemoteError,
    SchemaViolation,
    SchemaViolationError,
    StatesyncError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreFailedError,
    StoreInUseError,
    UnavailableError,
    ValueTooLargeError,
)
from statesync.store.base import StoreSettings
from statesync.store.sqlite import SQLiteStore

MAX_VALUE_BYTES = 256
MAX_OPS = 8
DOC = {"a": [0, {"b": 1}], "s": "xyz", "n": 1, "t": True}
RESULT_TIMEOUT_S = 5.0


# -- helpers -------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Any) -> Iterator[SQLiteStore]:
    settings = StoreSettings(limits=Limits(max_value_bytes=MAX_VALUE_BYTES, max_ops=MAX_OPS))
    s = SQLiteStore(tmp_path / "db.sqlite", settings=settings)
    commit(s, Command([Put("app", "doc", DOC), Put("app", "other", 1)]))  # rev 1
    commit(s, Command([Put("cfg", "x", "y")]))  # rev 2
    commit(s, Command([Put("app", "other", 2)]))  # rev 3
    try:
        yield s
    finally:
        s.close()


def commit(store: SQLiteStore, command: Command) -> Any:
    """`store.commit` with a deadline, so a wedged committer fails instead of hanging."""
    return store.submit(command).result(timeout=RESULT_TIMEOUT_S)


def state_of(store: SQLiteStore) -> tuple[Any, ...]:
    namespaces = store.namespaces()
    records = [
        (r.namespace, r.key, r.value, r.create_rev, r.mod_rev, r.version)
        for ns in namespaces
        for r in store.range(ns)
    ]
    log = [(c.rev, c.seq, c.hash) for c in store.changes(store.compacted_rev)]
    digests = [store.digest(ns) for ns in namespaces]
    return store.head_rev, namespaces, records, log, digests


def check_error(err: StatesyncError, *, json_ok: bool = True) -> dict[str, Any]:
    """The fields an error carries are in its message and in its JSON form."""
    assert isinstance(err, StatesyncError)
    message = str(err)
    for name in ("namespace", "key", "path"):
        value = getattr(err, name, None)
        if value:
            named = repr(value) in message or str(value) in message
            assert named, f"{name} {value!r} missing from {message!r}"
    if getattr(err, "op_index", None) is not None:
        assert f"op #{err.op_index}" in message
    as_dict = err.to_dict()
    assert as_dict["error"] == type(err).__name__
    assert as_dict["message"] == encodable(message)
    if isinstance(err, SchemaViolationError):  # violations become a list of objects
        assert as_dict["violations"] == [
            {"path": v.path, "keyword": v.keyword, "message": v.message} for v in err.violations
        ]
    elif not isinstance(err, ConflictError):
        for name, value in vars(err).items():
            if not name.startswith("_"):
                assert as_dict[name] == encodable(value), name
    if json_ok:
        assert orjson.loads(orjson.dumps(as_dict)) == as_dict
    return as_dict


def encodable(value: Any) -> Any:
    """What to_dict makes of a field: lone surrogates backslash-escaped."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def rejects(
    store: SQLiteStore,
    command: Command,
    expected: type[StatesyncError],
    *,
    json_ok: bool = True,
    id_is_free: bool = True,
) -> Any:
    """Commit `command`, expect `expected`, and check that nothing changed."""
    before = state_of(store)
    with pytest.raises(expected) as info:
        commit(store, command)
    assert state_of(store) == before, "a rejected command changed the store"
    check_error(info.value, json_ok=json_ok)
    if id_is_free:
        # The rejected command did not take its command_id.
        done = commit(store, Command([Put("cfg", "id-probe", 1)], command_id=command.command_id))
        assert not done.replayed
    return info.value


def reads_reject(
    store: SQLiteStore, read: Callable[[], object], expected: type[StatesyncError]
) -> Any:
    before = state_of(store)
    with pytest.raises(expected) as info:
        read()
    assert state_of(store) == before
    check_error(info.value)
    return info.value


# -- namespaces and keys -------------------------------------------------------------------

BAD_NAMESPACES = [
    pytest.param("App", "App", id="uppercase"),
    pytest.param("", "", id="empty"),
    pytest.param("a" * 64, "a" * 64, id="64-chars"),
    pytest.param("-app", "-app", id="leading-dash"),
    pytest.param("app/x", "app/x", id="slash"),
    pytest.param("app\n", "app\n", id="trailing-newline"),
    pytest.param(42, "42", id="int"),
    pytest.param(None, "None", id="none"),
    pytest.param(b"app", "b'app'", id="bytes"),
]


@pytest.mark.parametrize(("namespace", "named"), BAD_NAMESPACES)
def test_bad_namespace_in_a_put(store: SQLiteStore, namespace: Any, named: str) -> None:
    err = rejects(store, Command([Put(namespace, "k", 1)]), InvalidNamespaceError)
    assert err.namespace == named
    assert err.reason


@pytest.mark.parametrize(("namespace", "named"), BAD_NAMESPACES)
def test_bad_namespace_anywhere_in_a_command(
    store: SQLiteStore, namespace: Any, named: str
) -> None:
    ops = [Put("app", "fine", 1), Delete(namespace, "k")]
    assert rejects(store, Command(ops), InvalidNamespaceError).namespace == named
    compares = [Compare.exists(namespace, "k")]
    cmd = Command([Put("app", "fine", 1)], compares=compares)
    assert rejects(store, cmd, InvalidNamespaceError).namespace == named


@pytest.mark.parametrize(("namespace", "named"), BAD_NAMESPACES)
def test_bad_namespace_in_reads(store: SQLiteStore, namespace: Any, named: str) -> None:
    for read in (
        lambda: store.get(namespace, "k"),
        lambda: store.range(namespace),
        lambda: store.digest(namespace),
        lambda: store.changes(0, namespaces=[namespace]),
        lambda: store.snapshot([namespace]),
    ):
        assert reads_reject(store, read, InvalidNamespaceError).namespace == named


def test_namespace_boundaries_are_accepted(store: SQLiteStore) -> None:
    for ns in ("a" * 63, "0", "a.b_c-d"):
        commit(store, Command([Put(ns, "k", 1)]))
        assert store.get(ns, "k") is not None


LONG_KEY = "é" * 513  # 513 characters, 1026 UTF-8 bytes

BAD_KEYS = [
    pytest.param("", "", "empty", id="empty"),
    pytest.param("a\x00b", "a\x00b", "NUL", id="nul"),
    pytest.param(LONG_KEY, LONG_KEY[:40] + "...", "1026", id="1026-utf8-bytes"),
    pytest.param(5, "5", "string", id="int"),
    pytest.param(None, "None", "string", id="none"),
]


@pytest.mark.parametrize(("key", "named", "why"), BAD_KEYS)
def test_bad_key(store: SQLiteStore, key: Any, named: str, why: str) -> None:
    for op in (Put("app", key, 1), Patch("app", key, []), Delete("app", key)):
        err = rejects(store, Command([Put("cfg", "fine", 1), op]), InvalidKeyError)
        assert (err.namespace, err.key) == ("app", named)
        assert why in err.reason
    reads_reject(store, lambda: store.get("app", key), InvalidKeyError)


def test_lone_surrogate_key(store: SQLiteStore) -> None:
    err = rejects(store, Command([Put("app", "a\ud800b", 1)]), InvalidKeyError, json_ok=False)
    assert (err.namespace, err.key) == ("app", "a\ud800b")
    assert "Unicode" in err.reason


def test_key_boundaries_are_accepted(store: SQLiteStore) -> None:
    for key in ("é" * 512, "x" * 1024, "🙂", " ", "a/b~c"):
        commit(store, Command([Put("app", key, 1)]))
        assert store.get("app", key) is not None


# -- values --------------------------------------------------------------------------

BAD_VALUES = [
    pytest.param({"a": [0, {"b": 2**53}]}, "/a/1/b", "outside the I-JSON range", id="int-high"),
    pytest.param({"a": [0, {"b": -(2**53)}]}, "/a/1/b", "outside the I-JSON range", id="int-low"),
    pytest.param(10**30, "", "outside the I-JSON range", id="int-at-root"),
    pytest.param({"a/b": {"c~d": 2**60}}, "/a~1b/c~0d", "outside", id="pointer-escaping"),
    pytest.param({"x": float("nan")}, "/x", "not finite", id="nan"),
    pytest.param([1, float("inf")], "/1", "not finite", id="infinity"),
    pytest.param(float("-inf"), "", "not finite", id="minus-infinity-at-root"),
    pytest.param({"a": {"b": ["ok", "x\ud800"]}}, "/a/b/1", "lone surrogate", id="surrogate"),
    pytest.param({"s": {1, 2}}, "/s", "set is not a JSON type", id="set"),
    pytest.param({"b": [b"raw"]}, "/b/0", "bytes is not a JSON type", id="bytes"),
    pytest.param({"o": object()}, "/o", "object is not a JSON type", id="object"),
    pytest.param({"a": {1: "x"}}, "/a", "object key 1 is not a string", id="int-object-key"),
    pytest.param({"a": {None: "x"}}, "/a", "object key None", id="none-object-key"),
]


@pytest.mark.parametrize(("value", "path", "why"), BAD_VALUES)
def test_bad_value(store: SQLiteStore, value: Any, path: str, why: str) -> None:
    err = rejects(
        store, Command([Put("cfg", "fine", 1), Put("app", "v", value)]), InvalidValueError
    )
    assert (err.namespace, err.key, err.path) == ("app", "v", path)
    assert why in err.reason


def test_lone_surrogate_in_an_object_key(store: SQLiteStore) -> None:
    value = {"a": [{"\udfff": 1}]}
    err = rejects(store, Command([Put("app", "v", value)]), InvalidValueError, json_ok=False)
    assert (err.namespace, err.key, err.path) == ("app", "v", "/a/0/\udfff")
    assert "lone surrogate" in err.reason


def test_integer_boundaries_are_accepted(store: SQLiteStore) -> None:
    # 1e21 is the first float RFC 8785 prints with an exponent: fine as a number.
    value = {"hi": MAX_SAFE_INTEGER, "lo": -MAX_SAFE_INTEGER, "f": 1e21, "g": 2.0**53 - 1}
    commit(store, Command([Put("app", "v", value)]))
    record = store.get("app", "v")
    assert record is not None and record.value == canonical_bytes(value)


# The location of a lone surrogate in a key or an object key is itself unencodable.
UNENCODABLE = [
    pytest.param(lambda: InvalidKeyError("app", "a\ud800", "bad"), id="key"),
    pytest.param(lambda: InvalidValueError("app", "k", "/\udfff", "bad"), id="path"),
]


@pytest.mark.parametrize("make", UNENCODABLE)
def test_to_dict_is_json_even_when_the_location_is_not_unicode(make: Callable[[], Any]) -> None:
    orjson.dumps(make().to_dict())


# -- parse_json ------------------------------------------------------------------------

PARSE_ERRORS = [
    pytest.param('{"a": 1, "a": 2}', "", "duplicate object key 'a'", id="duplicate-key"),
    pytest.param('{"a": NaN}', "", "NaN", id="nan-literal"),
    pytest.param("Infinity", "", "Infinity", id="infinity-literal"),
    pytest.param("[-Infinity]", "", "-Infinity", id="minus-infinity-literal"),
    pytest.param('{"a": 1e400}', "/a", "not finite", id="overflowing-float"),
    pytest.param('{"a": [9007199254740992]}', "/a/0", "outside", id="big-int"),
    pytest.param('{"a": "\\ud800"}', "/a", "lone surrogate", id="escaped-lone-surrogate"),
    # A key that cannot be a string is named as the text spells it.
    pytest.param('{"\\udc00": 1}', "/\\udc00", "lone surrogate", id="surrogate-object-key"),
    pytest.param('{"a": [1,', "", "malformed JSON", id="truncated"),
    pytest.param('{"a": 1} x', "", "malformed JSON", id="trailing-data"),
    pytest.param("", "", "malformed JSON", id="empty"),
    pytest.param("{'a': 1}", "", "malformed JSON", id="single-quotes"),
    pytest.param(b'{"a": "\xff"}', "", "not valid UTF-8 at byte 7", id="invalid-utf8"),
    pytest.param(b'"\xed\xa0\x80"', "", "not valid UTF-8 at byte 1", id="utf8-encoded-surrogate"),
]


@pytest.mark.parametrize(("text", "path", "why"), PARSE_ERRORS)
def test_parse_json_rejects(text: str | bytes, path: str, why: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        parse_json(text, namespace="app", key="k")
    err = info.value
    assert (err.namespace, err.key, err.path) == ("app", "k", path)
    assert why in err.reason
    check_error(err)


def test_parse_json_malformed_names_line_and_column() -> None:
    with pytest.raises(InvalidValueError, match=r"line 2 column 7"):
        parse_json('{"a": 1,\n "b": }')


def test_parse_json_names_where_a_nested_duplicate_key_is() -> None:
    with pytest.raises(InvalidValueError) as info:
        parse_json('{"x": [{"a": 1, "a": 2}]}')
    assert info.value.path == "/x/0"


# -- sizes ------------------------------------------------------------------------------


def test_oversize_value(store: SQLiteStore) -> None:
    value = {"s": "é" * 126}  # 126 characters, but 252 UTF-8 bytes in the string
    size = len(canonical_bytes(value))
    assert size > MAX_VALUE_BYTES
    err = rejects(store, Command([Put("app", "big", value)]), ValueTooLargeError)
    assert (err.namespace, err.key, err.size, err.limit) == ("app", "big", size, MAX_VALUE_BYTES)
    assert str(size) in str(err) and str(MAX_VALUE_BYTES) in str(err)


def test_value_at_the_size_limit_is_accepted(store: SQLiteStore) -> None:
    value = "x" * (MAX_VALUE_BYTES - 2)
    assert len(canonical_bytes(value)) == MAX_VALUE_BYTES
    commit(store, Command([Put("app", "big", value)]))


def test_patch_whose_result_is_oversize(store: SQLiteStore) -> None:
    patch = [{"op": "add", "path": "/pad", "value": "x" * 240}]
    result = {**DOC, "pad": "x" * 240}
    size = len(canonical_bytes(result))
    assert size > MAX_VALUE_BYTES
    err = rejects(store, Command([Patch("app", "doc", patch)]), ValueTooLargeError)
    assert (err.namespace, err.key, err.size, err.limit) == ("app", "doc", size, MAX_VALUE_BYTES)


def test_too_many_ops(store: SQLiteStore) -> None:
    ops = [Put("app", f"k{i}", i) for i in range(MAX_OPS + 1)]
    err = rejects(store, Command(ops), InvalidCommandError)
    assert str(MAX_OPS) in err.reason


# -- JSON Patch ---------------------------------------------------------------------------

MALFORMED_PATCHES = [
    pytest.param({"op": "add", "path": "/x", "value": 1}, None, None, "array", id="not-a-list"),
    pytest.param("[]", None, None, "array", id="a-string"),
    pytest.param(["add"], 0, None, "object", id="op-not-an-object"),
    pytest.param([{"op": "frob", "path": "/a"}], 0, None, "unknown patch op", id="unknown-op"),
    pytest.param([{"path": "/a", "value": 1}], 0, None, "unknown patch op", id="no-op"),
    pytest.param(
        [{"op": "test", "path": "/n", "value": 1}, {"op": "add", "path": "/x"}],
        1,
        "/x",
        "needs 'value'",
        id="missing-value",
    ),
    pytest.param(
        [{"op": "replace", "path": "/n"}], 0, "/n", "needs 'value'", id="replace-no-value"
    ),
    pytest.param([{"op": "move", "path": "/x"}], 0, "/x", "needs 'from'", id="missing-from"),
    pytest.param([{"op": "copy", "path": "/x"}], 0, "/x", "needs 'from'", id="copy-missing-from"),
    pytest.param(
        [{"op": "replace", "path": "/a~2", "value": 1}], 0, "/a~2", "escape", id="bad-escape"
    ),
    pytest.param([{"op": "remove", "path": "/a~"}], 0, "/a~", "escape", id="dangling-tilde"),
    pytest.param(
        [{"op": "copy", "from": "/a~2", "path": "/x"}], 0, "/a~2", "'from'", id="bad-from-escape"
    ),
    pytest.param(
        [{"op": "add", "path": "a", "value": 1}], 0, "a", "must start with /", id="no-slash"
    ),
    pytest.param([{"op": "add", "path": 5, "value": 1}], 0, None, "Pointer", id="path-not-str"),
    pytest.param([{"op": "remove"}], 0, None, "Pointer", id="no-path"),
]


@pytest.mark.parametrize(("patch", "index", "path", "why"), MALFORMED_PATCHES)
def test_malformed_patch(
    store: SQLiteStore, patch: Any, index: int | None, path: str | None, why: str
) -> None:
    command = Command([Put("cfg", "fine", 1), Patch("app", "doc", patch)])
    err = rejects(store, command, InvalidPatchError)
    assert (err.namespace, err.key, err.op_index, err.path) == ("app", "doc", index, path)
    assert why in err.reason


NOT_APPLYING = [
    pytest.param([{"op": "replace", "path": "/missing", "value": 1}], 0, "/missing", id="replace"),
    pytest.param([{"op": "remove", "path": "/a/1/zz"}], 0, "/a/1/zz", id="remove"),
    pytest.param(
        [{"op": "replace", "path": "/n", "value": 2}, {"op": "remove", "path": "/a/5"}],
        1,
        "/a/5",
        id="second-op",
    ),
    pytest.param([{"op": "add", "path": "/a/9", "value": 1}], 0, "/a/9", id="past-array-end"),
    pytest.param([{"op": "add", "path": "/n/x", "value": 1}], 0, "/n/x", id="into-a-number"),
    pytest.param([{"op": "add", "path": "/no/x", "value": 1}], 0, "/no/x", id="missing-parent"),
    pytest.param([{"op": "add", "path": "/a/01", "value": 1}], 0, "/a/01", id="leading-zero"),
    pytest.param([{"op": "replace", "path": "/a/-", "value": 1}], 0, "/a/-", id="replace-dash"),
    pytest.param([{"op": "copy", "from": "/zz", "path": "/x"}], 0, "/x", id="copy-missing-from"),
    pytest.param([{"op": "move", "from": "/a", "path": "/a/0"}], 0, "/a/0", id="move-into-self"),
]


@pytest.mark.parametrize(("patch", "index", "path"), NOT_APPLYING)
def test_patch_that_does_not_apply(
    store: SQLiteStore, patch: list[dict[str, Any]], index: int, path: str
) -> None:
    command = Command([Put("cfg", "fine", 1), Patch("app", "doc", patch)])
    err = rejects(store, command, InvalidPatchError)
    assert (err.namespace, err.key, err.op_index, err.path) == ("app", "doc", index, path)


FAILING_TESTS = [
    pytest.param({"op": "test", "path": "/n", "value": 2}, id="different-number"),
    pytest.param({"op": "test", "path": "/s", "value": "XYZ"}, id="different-string"),
    pytest.param({"op": "test", "path": "/missing", "value": 1}, id="missing-member"),
    pytest.param({"op": "test", "path": "/a", "value": [0]}, id="different-array"),
]


@pytest.mark.parametrize("failing", FAILING_TESTS)
def test_failing_test_op(store: SQLiteStore, failing: dict[str, Any]) -> None:
    patch = [{"op": "replace", "path": "/n", "value": 7}, failing]
    err = rejects(store, Command([Patch("app", "doc", patch)]), InvalidPatchError)
    assert (err.op_index, err.path) == (1, failing["path"])
    assert "test failed" in err.reason


@pytest.mark.parametrize(
    ("path", "value"),
    [("/n", True), ("/t", 1), ("/a/0", False), ("/a", [False, {"b": True}])],
)
def test_test_op_does_not_equate_booleans_and_numbers(
    store: SQLiteStore, path: str, value: Any
) -> None:
    patch = [{"op": "test", "path": path, "value": value}]
    rejects(store, Command([Patch("app", "doc", patch)]), InvalidPatchError)


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "remove", "path": "/s/0"}, id="remove"),
        pytest.param({"op": "move", "from": "/s/0", "path": "/t"}, id="move"),
    ],
)
def test_pointer_into_a_string_is_a_patch_error_not_internal(
    store: SQLiteStore, op: dict[str, Any]
) -> None:
    rejects(store, Command([Patch("app", "doc", [op])]), InvalidPatchError)


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "copy", "from": "/s/0", "path": "/t"}, id="copy"),
        pytest.param({"op": "test", "path": "/s/0", "value": "x"}, id="test"),
    ],
)
def test_pointer_into_a_string_does_not_resolve(store: SQLiteStore, op: dict[str, Any]) -> None:
    rejects(store, Command([Patch("app", "doc", [op])]), InvalidPatchError)


def test_bad_value_inside_a_patch_names_the_op(store: SQLiteStore) -> None:
    patch = [
        {"op": "replace", "path": "/n", "value": 2},
        {"op": "add", "path": "/x", "value": float("nan")},
    ]
    err = rejects(store, Command([Patch("app", "doc", patch)]), InvalidInputError)
    assert getattr(err, "op_index", None) == 1


def test_bad_value_inside_a_patch_is_rejected(store: SQLiteStore) -> None:
    patch = [{"op": "add", "path": "/x", "value": {"y": [2**60]}}]
    err = rejects(store, Command([Patch("app", "doc", patch)]), InvalidPatchError)
    assert (err.namespace, err.key, err.op_index, err.path) == ("app", "doc", 0, "/x")
    assert "/y/0" in err.reason


def test_patch_on_an_absent_key(store: SQLiteStore) -> None:
    command = Command([Put("cfg", "fine", 1), Patch("app", "nope", [])])
    err = rejects(store, command, NotFoundError)
    assert (err.namespace, err.key) == ("app", "nope")


def test_patch_on_a_deleted_key(store: SQLiteStore) -> None:
    ops = [Delete("app", "other"), Patch("app", "doc", []), Put("cfg", "x", 2)]
    commit(store, Command(ops))
    err = rejects(store, Command([Patch("app", "other", [])]), NotFoundError)
    assert (err.namespace, err.key) == ("app", "other")


# -- commands -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param([Put("app", "k", 1), Put("app", "k", 2)], id="put-put"),
        pytest.param([Put("app", "k", 1), Delete("app", "k")], id="put-delete"),
        pytest.param([Patch("app", "doc", []), Put("cfg", "z", 1), Delete("app", "doc")], id="3"),
    ],
)
def test_duplicate_key_in_one_command(store: SQLiteStore, ops: list[Any]) -> None:
    err = rejects(store, Command(ops), InvalidCommandError)
    assert (err.namespace, err.key) == (ops[-1].namespace, ops[-1].key)


def test_same_key_in_two_namespaces_is_fine(store: SQLiteStore) -> None:
    commit(store, Command([Put("app", "k", 1), Put("cfg", "k", 2)]))


def test_empty_command(store: SQLiteStore) -> None:
    err = rejects(store, Command([]), InvalidCommandError)
    assert "at least one op" in err.reason


@pytest.mark.parametrize("command_id", ["", "x" * 257, 7, None])
def test_bad_command_id(store: SQLiteStore, command_id: Any) -> None:
    err = rejects(
        store,
        Command([Put("app", "k", 1)], command_id=command_id),
        InvalidCommandError,
        id_is_free=False,
    )
    assert "command_id" in err.reason


def test_bad_compare_revision(store: SQLiteStore) -> None:
    command = Command([Put("app", "k", 1)], compares=[Compare.mod_rev_is("app", "doc", -1)])
    err = rejects(store, command, InvalidCommandError)
    assert (err.namespace, err.key) == ("app", "doc")


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            Command([Put("app", "k", 1)], compares=[Compare("app", "doc", "bogus")]),  # type: ignore[arg-type]
            id="compare-kind",
        ),
        pytest.param(Command([{"ns": "app", "key": "k"}]), id="op-not-an-op"),  # type: ignore[list-item]
    ],
)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_malformed_command_object_is_invalid_input(store: SQLiteStore, command: Command) -> None:
    before = state_of(store)
    with pytest.raises(InvalidInputError):
        store.submit(command).result(timeout=1.0)
    assert state_of(store) == before
    assert commit(store, Command([Put("app", "after", 1)])).rev == store.head_rev


def test_conflict_lists_every_failed_compare(store: SQLiteStore) -> None:
    doc, other = store.get("app", "doc"), store.get("app", "other")
    assert doc is not None and other is not None
    compares = [
        Compare.mod_rev_is("app", "doc", doc.mod_rev),  # holds
        Compare.mod_rev_is("app", "other", other.mod_rev - 1),  # fails
        Compare.exists("app", "nope"),  # fails
        Compare.absent("cfg", "x"),  # fails
        Compare.mod_rev_is("app", "nope", 0),  # holds: 0 means absent
        Compare.mod_rev_is("app", "doc", 0),  # fails
    ]
    err = rejects(store, Command([Put("app", "k", 1)], compares=compares), ConflictError)
    assert err.failed == (
        FailedCompare("app", "other", f"mod_rev == {other.mod_rev - 1}", other.mod_rev),
        FailedCompare("app", "nope", "exists", None),
        FailedCompare("cfg", "x", "absent", 2),
        FailedCompare("app", "doc", "mod_rev == 0", doc.mod_rev),
    )
    as_dict = err.to_dict()
    assert as_dict["failed"] == [
        {"namespace": f.namespace, "key": f.key, "expected": f.expected, "actual_mod_rev": a}
        for f, a in zip(err.failed, [other.mod_rev, None, 2, doc.mod_rev], strict=True)
    ]
    for f in err.failed:
        assert f"{f.namespace}/{f.key}" in str(err)


def test_conflict_sees_earlier_commands_in_the_same_group(store: SQLiteStore) -> None:
    first = Command([Put("app", "k", 1)], compares=[Compare.absent("app", "k")])
    second = Command([Put("app", "k", 2)], compares=[Compare.absent("app", "k")])
    outcomes = store.commit_many([first, second])
    assert not isinstance(outcomes[0], Exception)
    assert isinstance(outcomes[1], ConflictError)
    assert outcomes[1].failed == (FailedCompare("app", "k", "absent", outcomes[0].rev),)
    assert store.head_rev == outcomes[0].rev


def test_command_id_reused_with_different_content(store: SQLiteStore) -> None:
    original = commit(store, Command([Put("app", "k", 1)], command_id="cmd-1"))
    again = commit(store, Command([Put("app", "k", 1)], command_id="cmd-1"))
    assert (again.rev, again.replayed) == (original.rev, True)
    for different in (
        Command([Put("app", "k", 2)], command_id="cmd-1"),
        Command([Put("app", "k2", 1)], command_id="cmd-1"),
        Command([Put("app", "k", 1)], compares=[Compare.absent("app", "k")], command_id="cmd-1"),
        Command([Delete("app", "k")], command_id="cmd-1"),
    ):
        err = rejects(store, different, CommandIdReusedError, id_is_free=False)
        assert (err.command_id, err.committed_rev) == ("cmd-1", original.rev)
        assert str(original.rev) in str(err)


def test_bad_commands_in_a_group_fail_alone(store: SQLiteStore) -> None:
    head = store.head_rev
    outcomes = store.commit_many(
        [
            Command([Put("app", "g1", 1)]),
            Command([Patch("app", "doc", [{"op": "remove", "path": "/zz"}])]),
            Command([Put("app", "g2", {"x": float("nan")})]),
            Command([Put("app", "g3", 3)], compares=[Compare.exists("app", "zz")]),
            Command([Patch("app", "zz", [])]),
            Command([Put("app", "g4", 4)]),
        ]
    )
    kinds = [type(o) for o in outcomes]
    assert kinds[1:5] == [InvalidPatchError, InvalidValueError, ConflictError, NotFoundError]
    assert [o.rev for o in (outcomes[0], outcomes[5])] == [head + 1, head + 2]
    assert store.head_rev == head + 2
    assert store.get("app", "g2") is None and store.get("app", "g3") is None
    assert store.verify_chain().to_rev == head + 2


# -- revisions ----------------------------------------------------------------------------


def test_read_at_a_future_revision(store: SQLiteStore) -> None:
    head = store.head_rev
    for read in (
        lambda: store.get("app", "doc", rev=head + 1),
        lambda: store.range("app", rev=head + 5),
        lambda: store.digest("app", rev=head + 1),
        lambda: store.changes(head + 1),
        lambda: store.snapshot(rev=head + 1).__enter__(),
        lambda: store.compact(head + 1),
    ):
        err = reads_reject(store, read, FutureRevisionError)
        assert err.head_rev == head and err.requested_rev > head
        assert str(err.requested_rev) in str(err)
    assert store.get("app", "doc", rev=head) is not None


def test_read_at_a_compacted_revision(store: SQLiteStore) -> None:
    for i in range(4):
        commit(store, Command([Put("app", "other", 10 + i)]))
    store.compact(5)
    head = store.head_rev
    for read in (
        lambda: store.get("app", "other", rev=4),
        lambda: store.range("app", rev=1),
        lambda: store.digest("app", rev=2),
        lambda: store.changes(3),
        lambda: store.snapshot(rev=4).__enter__(),
    ):
        err = reads_reject(store, read, CompactedError)
        assert err.compacted_rev == 5 and err.requested_rev < 5
    assert store.head_rev == head
    record = store.get("app", "other", rev=5)
    assert record is not None and record.json() == 11
    assert [c.rev for c in store.changes(5)] == [6, 7]


# -- closed store -------------------------------------------------------------------------


def test_commit_after_close(store: SQLiteStore) -> None:
    head = store.head_rev
    store.close()
    for call in (
        lambda: store.commit(Command([Put("app", "k", 1)])),
        lambda: store.submit(Command([Put("app", "k", 1)])),
        lambda: store.commit_many([Command([Put("app", "k", 1)])]),
        lambda: store.compact(1),
        lambda: store.maintain(),
    ):
        with pytest.raises(StoreClosedError) as info:
            call()
        assert info.value.retryable and info.value.exit_code == 5
        check_error(info.value)
    assert store.head_rev == head
    store.close()  # idempotent


def test_read_after_close_from_a_new_thread(store: SQLiteStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store.close()
    with ThreadPoolExecutor(1) as pool, pytest.raises(StoreClosedError):
        pool.submit(store.get, "app", "doc").result()


def test_read_after_close_from_a_thread_that_read_before(store: SQLiteStore) -> None:
    assert store.get("app", "doc") is not None
    store.close()
    with pytest.raises(StoreClosedError):
        store.get("app", "doc")


# -- the table ------------------------------------------------------------------------------


def docstring_table() -> dict[str, tuple[int | None, str | None]]:
    """(exit code, gRPC status) per class, as the errors.py docstring draws them.

    A class with no values of its own inherits its parent's (the nearest line
    above it with a smaller indent).
    """
    assert errors_module.__doc__ is not None
    table: dict[str, tuple[int | None, str | None]] = {}
    parents: list[tuple[int, str]] = []
    for line in errors_module.__doc__.splitlines():
        match = re.search(r"\b([A-Z]\w*Error)\b(.*)$", line)
        if match is None or ("──" not in line and not line.startswith("    StatesyncError")):
            continue
        name, rest = match.group(1), match.group(2)
        column = match.start(1)
        while parents and parents[-1][0] >= column:
            parents.pop()
        own = re.search(r"exit (\d+)\s+([A-Z_]+)", rest)
        if own is not None:
            table[name] = (int(own.group(1)), own.group(2))
        elif parents:
            table[name] = table[parents[-1][1]]
        else:
            table[name] = (None, None)
        parents.append((column, name))
    return table


TABLE = docstring_table()
ERROR_CLASSES = [
    getattr(errors_module, n)
    for n in errors_module.__all__
    if isinstance(getattr(errors_module, n), type)
    and issubclass(getattr(errors_module, n), StatesyncError)
]


def test_the_table_draws_every_error_class() -> None:
    assert {cls.__name__ for cls in ERROR_CLASSES} == set(TABLE)
    assert TABLE["InvalidInputError"] == (4, "INVALID_ARGUMENT")
    assert TABLE["InvalidPatchError"] == (4, "INVALID_ARGUMENT")  # inherited
    assert TABLE["StoreClosedError"] == (5, "UNAVAILABLE")
    assert TABLE["StoreInUseError"] == (5, "UNAVAILABLE")
    assert TABLE["StoreCorruptError"] == (7, "DATA_LOSS")


@pytest.mark.parametrize(
    "cls",
    [
        pytest.param(cls, id=cls.__name__)
        for cls in ERROR_CLASSES
        if TABLE.get(cls.__name__, (None, None)) != (None, None)
    ],
)
def test_exit_code_and_grpc_status_match_the_table(cls: type[StatesyncError]) -> None:
    assert (cls.exit_code, cls.grpc_status) == TABLE[cls.__name__]


def test_retryable_matches_the_table() -> None:
    for cls in ERROR_CLASSES:
        if issubclass(cls, InvalidInputError):
            assert not cls.retryable, cls  # "never retryable"
    assert StoreClosedError.retryable  # "retryable elsewhere"
    assert not StoreCorruptError.retryable


EXAMPLES: list[StatesyncError] = [
    InvalidNamespaceError("App", "uppercase"),
    InvalidKeyError("app", "", "empty"),
    InvalidValueError("app", "k", "/a/1/b", "too big"),
    InvalidValueError(None, None, "", "not JSON"),
    InvalidPatchError("app", "k", 2, "/x", "missing"),
    InvalidPatchError("app", "k", None, None, "not a list"),
    InvalidCommandError("duplicate", namespace="app", key="k"),
    InvalidCommandError("empty"),
    ValueTooLargeError("app", "k", 300, 256),
    CommandIdReusedError("c1", 7),
    FutureRevisionError(9, 3),
    ConflictError([FailedCompare("app", "k", "exists", None)]),
    NotFoundError("app", "k", 4),
    CompactedError(2, 5),
    StoreError("disk on fire"),
    StoreClosedError(),
    StoreInUseError("/data/state.sqlite", "4242"),
    StoreFailedError("a commit's durability is unknown (disk I/O error)"),
    UnavailableError("127.0.0.1:7700", "connection refused"),
    ProtocolError("a second hello on a stream in state TAILING"),
    RemoteError("QuotaError", "over quota", {"limit": 3}),
    StoreCorruptError("hash chain broken"),
    SchemaViolationError(
        "app", "k", 2, [SchemaViolation("/port", "maximum", "70000 is greater than 65535")]
    ),
    InvalidSchemaError("app", "/properties/port/type", "not a JSON Schema type"),
    IncompatibleSchemaError(
        "app",
        3,
        "BACKWARD",
        [
            {
                "path": "/properties/port/type",
                "rule": "type-narrowed",
                "direction": "backward",
                "against_version": 2,
                "message": "number became integer",
            }
        ],
    ),
    InvalidTranslationError(
        "unknown converter", namespace="app", from_version=1, to_version=2, op_index=0
    ),
    NoTranslationPathError("app", 3, [1], "the registered versions are 2..3"),
    MergeConflictError(
        "app",
        "k",
        4,
        9,
        [
            {
                "path": "/port",
                "base": {"value": 80},
                "current": {"value": 81},
                "writer": {"value": 82},
            }
        ],
    ),
]


@pytest.mark.parametrize("err", EXAMPLES, ids=lambda e: type(e).__name__)
def test_to_dict_is_json_with_the_location(err: StatesyncError) -> None:
    as_dict = check_error(err)
    for field in ("namespace", "key", "path", "op_index", "size", "limit", "command_id"):
        if hasattr(err, field):
            assert field in as_dict
    for field in ("requested_rev", "head_rev", "compacted_rev", "committed_rev", "rev"):
        if hasattr(err, field):
            assert as_dict[field] == getattr(err, field)


def test_every_error_class_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES} == set(ERROR_CLASSES) - {StatesyncError, InvalidInputError}


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(Command([Put("app", "k", 1)], command_id="id-\ud800"), id="command-id"),
        pytest.param(Command([Put("app", "k", 1)], trace="00-\udfff"), id="trace"),
        pytest.param(Command([Put("app", "k", 1)], trace="t" * 1025), id="trace-too-long"),
    ],
)
def test_unencodable_command_id_or_trace_is_refused_and_commits_continue(
    store: SQLiteStore, command: Command
) -> None:
    with pytest.raises(InvalidCommandError):
        store.commit(command)
    assert store.commit(Command([Put("app", "after", 1)])).rev == store.head_rev
