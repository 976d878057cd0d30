"""Validation vectors (conformance/validate/vectors.json), built by generate.py.

Each case is a JSON Schema (draft 2020-12, `format` asserted), a value, and every violation
statesync reports for it: the JSON Pointer into the value and the schema keyword that failed.
A worker in another language must accept and refuse the same values, or its NACKs would not
match the controller's write-time verdicts. The expectations are written here by hand; `build()`
refuses to write a case the reference validator disagrees with. Messages are prose and are left
out.
"""

from __future__ import annotations

from typing import Any

from statesync.contracts.registry import SchemaValidator

FORMAT_VERSION = 1

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "qty": {"type": "integer", "minimum": 1, "maximum": 100},
        "price": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
        "status": {"enum": ["open", "paid", "shipped"]},
        "placed_at": {"type": "string", "format": "date-time"},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3, "uniqueItems": True},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "minLength": 1}, "zip": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["sku", "qty"],
}

# (name, schema, value, expected [(path, keyword)], sorted by path then keyword)
Case = tuple[str, Any, Any, list[tuple[str, str]]]

CASES: list[Case] = [
    ("a valid order", ORDER, {"sku": "PEN-0001", "qty": 2, "status": "open"}, []),
    (
        "a full valid order",
        ORDER,
        {
            "sku": "INK-1234",
            "qty": 100,
            "price": 12.5,
            "placed_at": "2026-11-23T17:00:00Z",
            "email": "a@example.com",
            "tags": ["x", "y"],
            "address": {"city": "Lyon", "zip": "69001"},
        },
        [],
    ),
    ("missing required members", ORDER, {"status": "open"}, [("", "required"), ("", "required")]),
    ("wrong type at the root", ORDER, [1, 2], [("", "type")]),
    ("pattern", ORDER, {"sku": "pen-1", "qty": 1}, [("/sku", "pattern")]),
    ("minimum", ORDER, {"sku": "PEN-0001", "qty": 0}, [("/qty", "minimum")]),
    ("maximum", ORDER, {"sku": "PEN-0001", "qty": 101}, [("/qty", "maximum")]),
    ("integer, not a float", ORDER, {"sku": "PEN-0001", "qty": 1.5}, [("/qty", "type")]),
    ("exclusiveMinimum", ORDER, {"sku": "PEN-0001", "qty": 1, "price": 0}, [
        ("/price", "exclusiveMinimum")
    ]),
    ("enum", ORDER, {"sku": "PEN-0001", "qty": 1, "status": "lost"}, [("/status", "enum")]),
    ("format date-time", ORDER, {"sku": "PEN-0001", "qty": 1, "placed_at": "yesterday"}, [
        ("/placed_at", "format")
    ]),
    ("format email", ORDER, {"sku": "PEN-0001", "qty": 1, "email": "nobody"}, [
        ("/email", "format")
    ]),
    ("array maxItems and an item's type", ORDER, {"sku": "PEN-0001", "qty": 1, "tags": [
        "a", "b", "c", 4
    ]}, [("/tags", "maxItems"), ("/tags/3", "type")]),
    ("uniqueItems", ORDER, {"sku": "PEN-0001", "qty": 1, "tags": ["a", "a"]}, [
        ("/tags", "uniqueItems")
    ]),
    (
        "nested: required, minLength and a closed model",
        ORDER,
        {"sku": "PEN-0001", "qty": 1, "address": {"zip": 69001, "floor": 2}},
        [("/address", "additionalProperties"), ("/address", "required"), ("/address/zip", "type")],
    ),
    (
        "every violation is reported, not only the first",
        ORDER,
        {"sku": "x", "qty": -1, "status": "?", "address": {"city": ""}},
        [("/address/city", "minLength"), ("/qty", "minimum"), ("/sku", "pattern"),
         ("/status", "enum")],
    ),
    ("a key with a slash is escaped", {"properties": {"a/b": {"type": "string"}}}, {"a/b": 1}, [
        ("/a~1b", "type")
    ]),
    ("the true schema accepts anything", True, {"any": ["thing"]}, []),
    ("the false schema refuses everything", False, 1, [("", "false")]),
]  # fmt: skip


def build() -> dict[str, Any]:
    vectors = []
    for name, schema, value, expected in CASES:
        got = [
            (v.path, v.keyword) for v in SchemaValidator("conformance", 1, schema).violations(value)
        ]
        if got != expected:
            raise AssertionError(f"{name}: the validator reports {got}, the vector says {expected}")
        vectors.append(
            {
                "name": name,
                "schema": schema,
                "value": value,
                "valid": not expected,
                "violations": [{"path": p, "keyword": k} for p, k in expected],
            }
        )
    return {
        "description": "JSON Schema (2020-12, format asserted) validation outcomes: every "
        "violation as (JSON Pointer into the value, failing keyword), sorted by path, keyword",
        "format_version": FORMAT_VERSION,
        "vectors": vectors,
    }
