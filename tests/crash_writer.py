"""A writer process for the crash test: commits forever until it is killed.

Run as `python crash_writer.py --db PATH --intents PATH --acks PATH --seed N`.

Several threads commit concurrently (so group commit batches them). Each thread
owns its own keys (`t{thread}-k{n}` in two namespaces) and tracks their values,
so every op it plans changes exactly one key: a put, a patch of a present key
or a delete of a present key, never a delete of an absent key. On start it
reads its keys back from the store, so it continues wherever the killed
process left off.

Before committing, a thread appends the command's *intent*
(`{"command_id", "ops"}`) to the intents file; after `commit` returns (the
command is acknowledged) it appends `{"command_id", "rev", "ops"}` to the acks
file. Both lines are written with one `write` to an `O_APPEND` descriptor and
fsynced before the thread goes on, so the test knows every command that may be
in the store and every command the store has promised to keep.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import threading
import traceback
from typing import Any

import jsonpatch
import orjson

from statesync.core.commands import Command, Delete, Patch, Put
from statesync.store.sqlite import SQLiteStore

NAMESPACES = ("alpha", "beta")
KEYS_PER_NAMESPACE = 6
STRINGS = ("", "x", "ÿ", "日本", "🙂", "a/b~c", 'quote"back\\slash', "\u2028")

Op = dict[str, Any]


class DurableLog:
    """An append-only JSON-lines file; each line is on disk before `append` returns."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            os.write(self._fd, line)
            os.fsync(self._fd)


def own_keys(thread: int) -> list[tuple[str, str]]:
    return [(ns, f"t{thread}-k{n}") for ns in NAMESPACES for n in range(KEYS_PER_NAMESPACE)]


def new_value(rng: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {
        "n": rng.randint(-(2**53 - 1), 2**53 - 1) if rng.random() < 0.1 else rng.randint(0, 999),
        "s": rng.choice(STRINGS),
        "l": [rng.randint(0, 9) for _ in range(rng.randint(0, 3))],
    }
    if rng.random() < 0.3:
        value["f"] = rng.choice((0.5, -1.25e-3, 1e21, 3.0, 0.1))
    if rng.random() < 0.2:
        value[rng.choice(STRINGS)] = {"nested": [None, True, False]}
    return value


def new_patch(rng: random.Random, current: dict[str, Any]) -> list[Op]:
    patch: list[Op] = []
    if rng.random() < 0.3:
        patch.append({"op": "test", "path": "/n", "value": current["n"]})
    patch.append({"op": "replace", "path": "/n", "value": rng.randint(0, 999)})
    if len(current["l"]) >= 5:
        patch.append({"op": "remove", "path": "/l/0"})
    else:
        patch.append({"op": "add", "path": "/l/-", "value": rng.choice(STRINGS)})
    if rng.random() < 0.3:
        patch.append({"op": "copy", "from": "/s", "path": "/s2"})
    return patch


def plan_op(rng: random.Random, ns: str, key: str, model: dict[tuple[str, str], Any]) -> Op:
    current = model.get((ns, key))
    roll = rng.random()
    if current is None or roll < 0.5:
        return {"op": "put", "ns": ns, "key": key, "value": new_value(rng)}
    if roll < 0.85:
        return {"op": "patch", "ns": ns, "key": key, "patch": new_patch(rng, current)}
    return {"op": "delete", "ns": ns, "key": key}


def plan_command(rng: random.Random, thread: int, model: dict[tuple[str, str], Any]) -> list[Op]:
    keys = own_keys(thread)
    if rng.random() < 0.4:
        ns, key = rng.choice(keys)
        return [plan_op(rng, ns, key, model)]
    # A multi-op command spanning both namespaces: 2 to 5 distinct keys.
    count = rng.randint(2, 5)
    chosen = [rng.choice(keys[:KEYS_PER_NAMESPACE]), rng.choice(keys[KEYS_PER_NAMESPACE:])]
    rest = [k for k in keys if k not in chosen]
    chosen += rng.sample(rest, count - 2)
    rng.shuffle(chosen)
    return [plan_op(rng, ns, key, model) for ns, key in chosen]


def to_command(ops: list[Op], command_id: str) -> Command:
    """The `Command` an ops list (as logged) describes. The crash test uses it too."""
    built: list[Put | Patch | Delete] = []
    for op in ops:
        if op["op"] == "put":
            built.append(Put(op["ns"], op["key"], op["value"]))
        elif op["op"] == "patch":
            built.append(Patch(op["ns"], op["key"], op["patch"]))
        else:
            built.append(Delete(op["ns"], op["key"]))
    return Command(built, command_id=command_id)


def apply_op(model: dict[tuple[str, str], Any], op: Op) -> None:
    """Apply one logged op to a {(ns, key): value} model. The crash test uses it too."""
    where = (op["ns"], op["key"])
    if op["op"] == "put":
        model[where] = copy.deepcopy(op["value"])
    elif op["op"] == "patch":
        model[where] = jsonpatch.apply_patch(copy.deepcopy(model[where]), op["patch"])
    else:
        del model[where]


def run_thread(
    store: SQLiteStore, thread: int, seed: int, intents: DurableLog, acks: DurableLog
) -> None:
    rng = random.Random(f"{seed}:{thread}")
    model: dict[tuple[str, str], Any] = {}
    for ns in NAMESPACES:
        for record in store.range(ns, prefix=f"t{thread}-k", limit=10_000):
            model[(ns, record.key)] = record.json()
    n = 0
    while True:
        ops = plan_command(rng, thread, model)
        command_id = f"s{seed}-t{thread}-{n}"
        n += 1
        intents.append({"command_id": command_id, "ops": ops})
        committed = store.commit(to_command(ops, command_id))
        for op in ops:
            apply_op(model, op)
        acks.append({"command_id": command_id, "rev": committed.rev, "ops": ops})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--intents", required=True)
    parser.add_argument("--acks", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)

    store = SQLiteStore(args.db)
    intents, acks = DurableLog(args.intents), DurableLog(args.acks)

    def guarded(thread: int) -> None:
        try:
            run_thread(store, thread, args.seed, intents, acks)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(3)  # a writer that stops committing must fail the test, loudly

    threads = [
        threading.Thread(target=guarded, args=(t,), name=f"writer-{t}", daemon=True)
        for t in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
