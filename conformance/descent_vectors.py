"""The digest-descent vectors (conformance/descent/vectors.json): what a worker answers.

A descent (docs/reconciliation.md §2, the byte layout in docs/wire.md "Digest descent") asks a
worker to describe nodes of its digest trie (`DigestQuery.prefixes` -> `NodeAnswer`s) and to
name the keys behind truncated leaves (`NameQuery` -> `DigestAnswer.names`). The expected
answers are computed twice: by the reference (`statesync.core.reconcile`) and by the small
implementation of the spec text below (`_spec_answer`, `_spec_names`); the generator refuses to
write a vector on which they disagree. `descents` are transcripts of the reference controller
(`Descent`) against the reference worker: the rounds are informative, the answers in them and
the keys found are what an implementation must reproduce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import rfc8785

from statesync.core import reconcile
from statesync.core.digest import NamespaceDigest, fingerprint, leaf_value, position

Items = list[dict[str, Any]]

LEAF_LIMIT = 256
NIBBLES = "0123456789abcdef"

# Two keys whose 4-byte truncated leaves are equal (both with the value 1): 112182ef.
# Found by counting up "collide:N"; checked in build().
COLLIDING = ("collide:80506", "collide:102525")
COLLIDING_LEAF = "112182ef"

SMALL_ITEMS: Items = [
    {"key": "a", "value": 1},
    {"key": "user/42", "value": {"name": "Ada", "roles": ["admin", "dev"], "quota": 1.5}},
    {
        "key": "\u043a\u043b\u044e\u0447",
        "value": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435",
    },
    {"key": "\U0001f511", "value": None},
    {"key": 'say "hi"\\', "value": [True, False, {}, []]},
]


def _numbered(n: int, *, version: int = 1) -> Items:
    return [{"key": f"user:{i:04d}", "value": {"id": i, "v": version}} for i in range(n)]


def _pairs(items: Items) -> dict[str, bytes]:
    pairs = {i["key"]: hashlib.sha256(rfc8785.dumps(i["value"])).digest() for i in items}
    if len(pairs) != len(items):  # pragma: no cover - a broken vector table
        raise SystemExit("duplicate key in a descent vector")
    return pairs


def _leaves_of(pairs: dict[str, bytes]) -> Callable[[str], dict[str, bytes]]:
    positions = {k: position(k).hex() for k in pairs}

    def leaves(prefix: str) -> dict[str, bytes]:
        return {k: v for k, v in pairs.items() if positions[k].startswith(prefix)}

    return leaves


# -- the spec text, implemented from scratch ----------------------------------------------


def _short_leaf(key: str, vhash: bytes) -> bytes:
    return leaf_value(key, vhash).to_bytes(32, "big")[:4]


def _spec_node(pairs: dict[str, bytes], prefix: str) -> tuple[int, bytes]:
    under = [(k, v) for k, v in pairs.items() if position(k).hex().startswith(prefix)]
    total = sum(leaf_value(k, v) for k, v in under) % 2**256
    return len(under), fingerprint(len(under), total)


def _spec_answer(pairs: dict[str, bytes], prefix: str) -> dict[str, Any]:
    count, _ = _spec_node(pairs, prefix)
    if count <= LEAF_LIMIT or len(prefix) == 64:
        under = [(k, v) for k, v in pairs.items() if position(k).hex().startswith(prefix)]
        packed = b"".join(sorted(_short_leaf(k, v) for k, v in under))
        return {
            "prefix": prefix,
            "count": count,
            "is_leaves": True,
            "children": "",
            "leaves": packed.hex(),
        }
    children = b""
    for nibble in NIBBLES:
        c, fp = _spec_node(pairs, prefix + nibble)
        children += c.to_bytes(4, "big") + fp[:4]
    return {
        "prefix": prefix,
        "count": count,
        "is_leaves": False,
        "children": children.hex(),
        "leaves": "",
    }


def _spec_names(pairs: dict[str, bytes], prefix: str, wanted: list[bytes]) -> list[str]:
    return sorted(
        k
        for k, v in pairs.items()
        if position(k).hex().startswith(prefix) and _short_leaf(k, v) in set(wanted)
    )


# -- the reference, checked against the spec ------------------------------------------------


def _answers(pairs: dict[str, bytes], prefixes: list[str]) -> list[dict[str, Any]]:
    digest = NamespaceDigest.from_items(pairs.items())
    out = []
    for a in reconcile.describe(digest, _leaves_of(pairs), prefixes):
        node = {
            "prefix": a.prefix,
            "count": _spec_node(pairs, a.prefix)[0],
            "is_leaves": a.is_leaves,
            "children": a.children.hex(),
            "leaves": a.leaves.hex(),
        }
        if node != _spec_answer(pairs, a.prefix):  # pragma: no cover - a disagreement
            raise SystemExit(f"reconcile.describe disagrees with the spec at prefix {a.prefix!r}")
        out.append(node)
    if [n["prefix"] for n in out] != prefixes:  # pragma: no cover
        raise SystemExit("answers are not in query order")
    return out


def _split(packed: bytes) -> list[bytes]:
    return [packed[i : i + 4] for i in range(0, len(packed), 4)]


def _names(pairs: dict[str, bytes], prefix: str, wanted: list[bytes]) -> list[str]:
    named = reconcile.name(_leaves_of(pairs), prefix, b"".join(wanted))
    if named != _spec_names(pairs, prefix, wanted):  # pragma: no cover
        raise SystemExit(f"reconcile.name disagrees with the spec at prefix {prefix!r}")
    return named


def _answer_case(name: str, items: Items, prefixes: list[str]) -> dict[str, Any]:
    pairs = _pairs(items)
    return {"name": name, "items": items, "prefixes": prefixes, "nodes": _answers(pairs, prefixes)}


def _names_case(name: str, items: Items, prefix: str, wanted: list[str]) -> dict[str, Any]:
    pairs = _pairs(items)
    leaves = [bytes.fromhex(w) for w in wanted]
    return {
        "name": name,
        "items": items,
        "prefix": prefix,
        "leaves": "".join(wanted),
        "names": _names(pairs, prefix, leaves),
    }


def _descent_case(name: str, controller: Items, worker: Items) -> dict[str, Any]:
    ours, theirs = _pairs(controller), _pairs(worker)
    our_digest = NamespaceDigest.from_items(ours.items())
    our_leaves = _leaves_of(ours)
    descent = reconcile.Descent("conformance")
    rounds = []
    while not descent.done:
        prefixes, unknown = descent.query()
        nodes = _answers(theirs, prefixes)
        named = [n for p, v in unknown for n in _names(theirs, p, _split(v))]
        rounds.append(
            {
                "prefixes": prefixes,
                "names": [{"prefix": p, "leaves": v.hex()} for p, v in unknown],
                "nodes": nodes,
                "named": named,
            }
        )
        answers = [
            reconcile.NodeAnswer(
                n["prefix"],
                bytes.fromhex(n["children"]),
                bytes.fromhex(n["leaves"]),
                n["is_leaves"],
            )
            for n in nodes
        ]
        descent.receive(answers, named, lambda p: our_digest.node(p, our_leaves), our_leaves)
    found = sorted(descent.differing)
    truth = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if found != truth:  # pragma: no cover - a case that hits a truncation collision
        raise SystemExit(f"descent {name!r} found {found}, the difference is {truth}")
    return {
        "name": name,
        "controller": controller,
        "worker": worker,
        "rounds": rounds,
        "differing": found,
    }


def _busiest(items: Items, depth: int) -> str:
    counts: dict[str, int] = {}
    for item in items:
        p = position(item["key"]).hex()[:depth]
        counts[p] = counts.get(p, 0) + 1
    return min(counts, key=lambda p: (-counts[p], p))


def build() -> dict[str, Any]:
    one = hashlib.sha256(b"1").digest()
    if {_short_leaf(k, one).hex() for k in COLLIDING} != {COLLIDING_LEAF}:  # pragma: no cover
        raise SystemExit("the colliding keys do not collide")
    colliding: Items = [{"key": k, "value": 1} for k in COLLIDING] + [{"key": "x", "value": 2}]
    a_position = position("a").hex()
    small_pairs = _pairs(SMALL_ITEMS)
    small_leaves = sorted(_short_leaf(k, v).hex() for k, v in small_pairs.items())
    many = _numbered(257)
    base = _numbered(300)
    edited = [dict(item) for item in base]
    edited[7] = {**edited[7], "value": {**edited[7]["value"], "v": 2}}
    del edited[150]
    edited.append({"key": "user:9999", "value": {"id": 9999, "v": 1}})
    extra = [*SMALL_ITEMS, {"key": "only-on-the-worker", "value": 1}, {"key": "and-me", "value": 2}]
    answers = [
        _answer_case("empty namespace: every node is an empty leaf list", [], ["", "0", "f"]),
        _answer_case(
            "five keys: the root, a nibble, an empty nibble, a full position",
            SMALL_ITEMS,
            ["", a_position[:1], "3f", a_position],
        ),
        _answer_case("256 keys: the root is listed by its leaves", _numbered(256), [""]),
        _answer_case(
            "257 keys: the root is described by its 16 children",
            many,
            ["", "0", _busiest(many, 1), _busiest(many, 2), "ffff"],
        ),
        _answer_case("two keys with the same truncated leaf: both are listed", colliding, [""]),
    ]
    names = [
        _names_case(
            "name two leaves; a leaf nobody holds names nothing",
            SMALL_ITEMS,
            "",
            [small_leaves[0], small_leaves[3], "00000000"],
        ),
        _names_case(
            "only keys under the prefix are named",
            SMALL_ITEMS,
            a_position[:1],
            small_leaves,
        ),
        _names_case("a truncated leaf two keys share names both", colliding, "", [COLLIDING_LEAF]),
    ]
    descents = [
        _descent_case("identical: one round, nothing differs", base, base[::-1]),
        _descent_case("empty worker: every key differs", SMALL_ITEMS, []),
        _descent_case(
            "the worker holds keys the controller lacks: they are named", SMALL_ITEMS, extra
        ),
        _descent_case(
            "300 keys: a value changed, a key missing on the worker, a key only on the worker",
            base,
            edited,
        ),
    ]
    return {
        "description": "Digest-descent answers (docs/wire.md, Digest descent); see "
        "conformance/README.md",
        "format_version": 1,
        "leaf_limit": LEAF_LIMIT,
        "answers": answers,
        "names": names,
        "descents": descents,
    }
