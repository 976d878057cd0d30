from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PutOp(_message.Message):
    __slots__ = ("ns", "key", "value", "schema_version", "base_rev")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_REV_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    value: bytes
    schema_version: int
    base_rev: int
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ..., schema_version: _Optional[int] = ..., base_rev: _Optional[int] = ...) -> None: ...

class PatchOp(_message.Message):
    __slots__ = ("ns", "key", "patch")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    patch: bytes
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ..., patch: _Optional[bytes] = ...) -> None: ...

class DeleteOp(_message.Message):
    __slots__ = ("ns", "key")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ContractOp(_message.Message):
    __slots__ = ("ns", "request")
    NS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ns: str
    request: bytes
    def __init__(self, ns: _Optional[str] = ..., request: _Optional[bytes] = ...) -> None: ...

class Op(_message.Message):
    __slots__ = ("put", "patch", "delete", "contract")
    PUT_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    put: PutOp
    patch: PatchOp
    delete: DeleteOp
    contract: ContractOp
    def __init__(self, put: _Optional[_Union[PutOp, _Mapping]] = ..., patch: _Optional[_Union[PatchOp, _Mapping]] = ..., delete: _Optional[_Union[DeleteOp, _Mapping]] = ..., contract: _Optional[_Union[ContractOp, _Mapping]] = ...) -> None: ...

class Compare(_message.Message):
    __slots__ = ("ns", "key", "mod_rev", "exists")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MOD_REV_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    mod_rev: int
    exists: bool
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ..., mod_rev: _Optional[int] = ..., exists: _Optional[bool] = ...) -> None: ...

class CommandRequest(_message.Message):
    __slots__ = ("ops", "compares", "command_id", "trace", "tag")
    OPS_FIELD_NUMBER: _ClassVar[int]
    COMPARES_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[Op]
    compares: _containers.RepeatedCompositeFieldContainer[Compare]
    command_id: str
    trace: str
    tag: int
    def __init__(self, ops: _Optional[_Iterable[_Union[Op, _Mapping]]] = ..., compares: _Optional[_Iterable[_Union[Compare, _Mapping]]] = ..., command_id: _Optional[str] = ..., trace: _Optional[str] = ..., tag: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "detail", "retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    detail: bytes
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., detail: _Optional[bytes] = ..., retryable: _Optional[bool] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("rev", "command_id", "ts_ms", "replayed", "tag", "error")
    REV_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TS_MS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    rev: int
    command_id: str
    ts_ms: int
    replayed: bool
    tag: int
    error: Error
    def __init__(self, rev: _Optional[int] = ..., command_id: _Optional[str] = ..., ts_ms: _Optional[int] = ..., replayed: _Optional[bool] = ..., tag: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("ns", "key", "value", "create_rev", "mod_rev", "version", "schema_version", "source_hash")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CREATE_REV_FIELD_NUMBER: _ClassVar[int]
    MOD_REV_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HASH_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    value: bytes
    create_rev: int
    mod_rev: int
    version: int
    schema_version: int
    source_hash: bytes
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ..., create_rev: _Optional[int] = ..., mod_rev: _Optional[int] = ..., version: _Optional[int] = ..., schema_version: _Optional[int] = ..., source_hash: _Optional[bytes] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("ns", "key", "rev")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    rev: int
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ..., rev: _Optional[int] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("entry", "rev")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    rev: int
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., rev: _Optional[int] = ...) -> None: ...

class RangeRequest(_message.Message):
    __slots__ = ("ns", "prefix", "rev", "page_size")
    NS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ns: str
    prefix: str
    rev: int
    page_size: int
    def __init__(self, ns: _Optional[str] = ..., prefix: _Optional[str] = ..., rev: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class RangePage(_message.Message):
    __slots__ = ("entries", "rev")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    rev: int
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., rev: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("namespaces", "rev", "chunk_size")
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    rev: int
    chunk_size: int
    def __init__(self, namespaces: _Optional[_Iterable[str]] = ..., rev: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class NamespaceDigest(_message.Message):
    __slots__ = ("ns", "root", "count")
    NS_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ns: str
    root: bytes
    count: int
    def __init__(self, ns: _Optional[str] = ..., root: _Optional[bytes] = ..., count: _Optional[int] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("rev", "entries", "digests", "last")
    REV_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    rev: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    digests: _containers.RepeatedCompositeFieldContainer[NamespaceDigest]
    last: bool
    def __init__(self, rev: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., digests: _Optional[_Iterable[_Union[NamespaceDigest, _Mapping]]] = ..., last: _Optional[bool] = ...) -> None: ...

class CompactRequest(_message.Message):
    __slots__ = ("rev",)
    REV_FIELD_NUMBER: _ClassVar[int]
    rev: int
    def __init__(self, rev: _Optional[int] = ...) -> None: ...

class CompactReply(_message.Message):
    __slots__ = ("compacted_rev",)
    COMPACTED_REV_FIELD_NUMBER: _ClassVar[int]
    compacted_rev: int
    def __init__(self, compacted_rev: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeldKey(_message.Message):
    __slots__ = ("ns", "key", "rev", "reason", "held_hash")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HELD_HASH_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    rev: int
    reason: str
    held_hash: bytes
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ..., rev: _Optional[int] = ..., reason: _Optional[str] = ..., held_hash: _Optional[bytes] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("worker_id", "connected", "namespaces", "applied_rev", "lag_revisions", "lag_seconds", "last_ack_unix", "digest", "nacks", "resyncs", "state", "held", "peer", "buffered", "served", "divergences", "keys_repaired", "repairs")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REV_FIELD_NUMBER: _ClassVar[int]
    LAG_REVISIONS_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_ACK_UNIX_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    RESYNCS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCES_FIELD_NUMBER: _ClassVar[int]
    KEYS_REPAIRED_FIELD_NUMBER: _ClassVar[int]
    REPAIRS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    connected: bool
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    applied_rev: int
    lag_revisions: int
    lag_seconds: float
    last_ack_unix: float
    digest: str
    nacks: int
    resyncs: int
    state: str
    held: _containers.RepeatedCompositeFieldContainer[HeldKey]
    peer: str
    buffered: int
    served: _containers.RepeatedCompositeFieldContainer[SchemaVersions]
    divergences: int
    keys_repaired: int
    repairs: _containers.RepeatedCompositeFieldContainer[RepairRecord]
    def __init__(self, worker_id: _Optional[str] = ..., connected: _Optional[bool] = ..., namespaces: _Optional[_Iterable[str]] = ..., applied_rev: _Optional[int] = ..., lag_revisions: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., last_ack_unix: _Optional[float] = ..., digest: _Optional[str] = ..., nacks: _Optional[int] = ..., resyncs: _Optional[int] = ..., state: _Optional[str] = ..., held: _Optional[_Iterable[_Union[HeldKey, _Mapping]]] = ..., peer: _Optional[str] = ..., buffered: _Optional[int] = ..., served: _Optional[_Iterable[_Union[SchemaVersions, _Mapping]]] = ..., divergences: _Optional[int] = ..., keys_repaired: _Optional[int] = ..., repairs: _Optional[_Iterable[_Union[RepairRecord, _Mapping]]] = ...) -> None: ...

class RepairRecord(_message.Message):
    __slots__ = ("ns", "reason", "detected_unix", "keys", "key_count", "round_trips", "bytes", "outcome", "seconds")
    NS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETECTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    KEY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROUND_TRIPS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ns: str
    reason: str
    detected_unix: float
    keys: _containers.RepeatedScalarFieldContainer[str]
    key_count: int
    round_trips: int
    bytes: int
    outcome: str
    seconds: float
    def __init__(self, ns: _Optional[str] = ..., reason: _Optional[str] = ..., detected_unix: _Optional[float] = ..., keys: _Optional[_Iterable[str]] = ..., key_count: _Optional[int] = ..., round_trips: _Optional[int] = ..., bytes: _Optional[int] = ..., outcome: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class ReconcileRequest(_message.Message):
    __slots__ = ("workers", "namespaces", "timeout_s")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedScalarFieldContainer[str]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    timeout_s: float
    def __init__(self, workers: _Optional[_Iterable[str]] = ..., namespaces: _Optional[_Iterable[str]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class ReconcileReply(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReconcileResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ReconcileResult, _Mapping]]] = ...) -> None: ...

class ReconcileResult(_message.Message):
    __slots__ = ("worker_id", "record")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    record: RepairRecord
    def __init__(self, worker_id: _Optional[str] = ..., record: _Optional[_Union[RepairRecord, _Mapping]] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("head_rev", "compacted_rev", "workers", "namespaces", "data", "started_unix")
    HEAD_REV_FIELD_NUMBER: _ClassVar[int]
    COMPACTED_REV_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    head_rev: int
    compacted_rev: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    namespaces: _containers.RepeatedCompositeFieldContainer[NamespaceDigest]
    data: str
    started_unix: float
    def __init__(self, head_rev: _Optional[int] = ..., compacted_rev: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., namespaces: _Optional[_Iterable[_Union[NamespaceDigest, _Mapping]]] = ..., data: _Optional[str] = ..., started_unix: _Optional[float] = ...) -> None: ...

class WaitAppliedRequest(_message.Message):
    __slots__ = ("rev", "namespaces", "workers", "timeout_s")
    REV_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    rev: int
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    workers: _containers.RepeatedScalarFieldContainer[str]
    timeout_s: float
    def __init__(self, rev: _Optional[int] = ..., namespaces: _Optional[_Iterable[str]] = ..., workers: _Optional[_Iterable[str]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class WaitAppliedReply(_message.Message):
    __slots__ = ("applied", "pending", "complete")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    applied: _containers.RepeatedScalarFieldContainer[str]
    pending: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    complete: bool
    def __init__(self, applied: _Optional[_Iterable[str]] = ..., pending: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., complete: _Optional[bool] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("worker_id", "namespaces", "from_rev", "deltas", "heartbeat_s", "observer", "held", "versions")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    FROM_REV_FIELD_NUMBER: _ClassVar[int]
    DELTAS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_S_FIELD_NUMBER: _ClassVar[int]
    OBSERVER_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    from_rev: int
    deltas: bool
    heartbeat_s: float
    observer: bool
    held: _containers.RepeatedCompositeFieldContainer[HeldKey]
    versions: _containers.RepeatedCompositeFieldContainer[SchemaVersions]
    def __init__(self, worker_id: _Optional[str] = ..., namespaces: _Optional[_Iterable[str]] = ..., from_rev: _Optional[int] = ..., deltas: _Optional[bool] = ..., heartbeat_s: _Optional[float] = ..., observer: _Optional[bool] = ..., held: _Optional[_Iterable[_Union[HeldKey, _Mapping]]] = ..., versions: _Optional[_Iterable[_Union[SchemaVersions, _Mapping]]] = ...) -> None: ...

class SchemaVersions(_message.Message):
    __slots__ = ("ns", "versions", "replica_version")
    NS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ns: str
    versions: _containers.RepeatedScalarFieldContainer[int]
    replica_version: int
    def __init__(self, ns: _Optional[str] = ..., versions: _Optional[_Iterable[int]] = ..., replica_version: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("rev", "digests", "held", "repaired")
    REV_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    rev: int
    digests: _containers.RepeatedCompositeFieldContainer[NamespaceDigest]
    held: _containers.RepeatedCompositeFieldContainer[HeldKey]
    repaired: int
    def __init__(self, rev: _Optional[int] = ..., digests: _Optional[_Iterable[_Union[NamespaceDigest, _Mapping]]] = ..., held: _Optional[_Iterable[_Union[HeldKey, _Mapping]]] = ..., repaired: _Optional[int] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("rev", "ns", "key", "reason")
    REV_FIELD_NUMBER: _ClassVar[int]
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    rev: int
    ns: str
    key: str
    reason: str
    def __init__(self, rev: _Optional[int] = ..., ns: _Optional[str] = ..., key: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_unix", "snapshot_queued")
    SENT_UNIX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_QUEUED_FIELD_NUMBER: _ClassVar[int]
    sent_unix: float
    snapshot_queued: bool
    def __init__(self, sent_unix: _Optional[float] = ..., snapshot_queued: _Optional[bool] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("hello", "ack", "nack", "heartbeat", "answer")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    ack: Ack
    nack: Nack
    heartbeat: Heartbeat
    answer: DigestAnswer
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., nack: _Optional[_Union[Nack, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., answer: _Optional[_Union[DigestAnswer, _Mapping]] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("ns", "key", "kind", "value", "patch", "value_hash", "prev_mod_rev", "create_rev", "version", "schema_version", "source_hash")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PUT: _ClassVar[Change.Kind]
        DELETE: _ClassVar[Change.Kind]
    PUT: Change.Kind
    DELETE: Change.Kind
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    VALUE_HASH_FIELD_NUMBER: _ClassVar[int]
    PREV_MOD_REV_FIELD_NUMBER: _ClassVar[int]
    CREATE_REV_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HASH_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    kind: Change.Kind
    value: bytes
    patch: bytes
    value_hash: bytes
    prev_mod_rev: int
    create_rev: int
    version: int
    schema_version: int
    source_hash: bytes
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ..., kind: _Optional[_Union[Change.Kind, str]] = ..., value: _Optional[bytes] = ..., patch: _Optional[bytes] = ..., value_hash: _Optional[bytes] = ..., prev_mod_rev: _Optional[int] = ..., create_rev: _Optional[int] = ..., version: _Optional[int] = ..., schema_version: _Optional[int] = ..., source_hash: _Optional[bytes] = ...) -> None: ...

class Revision(_message.Message):
    __slots__ = ("rev", "command_id", "ts_ms", "trace", "changes")
    REV_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TS_MS_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    rev: int
    command_id: str
    ts_ms: int
    trace: str
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    def __init__(self, rev: _Optional[int] = ..., command_id: _Optional[str] = ..., ts_ms: _Optional[int] = ..., trace: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ...) -> None: ...

class ChangeBatch(_message.Message):
    __slots__ = ("prev_rev", "rev", "revisions")
    PREV_REV_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    prev_rev: int
    rev: int
    revisions: _containers.RepeatedCompositeFieldContainer[Revision]
    def __init__(self, prev_rev: _Optional[int] = ..., rev: _Optional[int] = ..., revisions: _Optional[_Iterable[_Union[Revision, _Mapping]]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("rev", "head_rev")
    REV_FIELD_NUMBER: _ClassVar[int]
    HEAD_REV_FIELD_NUMBER: _ClassVar[int]
    rev: int
    head_rev: int
    def __init__(self, rev: _Optional[int] = ..., head_rev: _Optional[int] = ...) -> None: ...

class Resync(_message.Message):
    __slots__ = ("reason", "rev", "digests", "reconcile")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    RECONCILE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    rev: int
    digests: _containers.RepeatedCompositeFieldContainer[NamespaceDigest]
    reconcile: bool
    def __init__(self, reason: _Optional[str] = ..., rev: _Optional[int] = ..., digests: _Optional[_Iterable[_Union[NamespaceDigest, _Mapping]]] = ..., reconcile: _Optional[bool] = ...) -> None: ...

class DigestQuery(_message.Message):
    __slots__ = ("id", "ns", "prefixes", "names")
    ID_FIELD_NUMBER: _ClassVar[int]
    NS_FIELD_NUMBER: _ClassVar[int]
    PREFIXES_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    id: int
    ns: str
    prefixes: _containers.RepeatedScalarFieldContainer[str]
    names: _containers.RepeatedCompositeFieldContainer[NameQuery]
    def __init__(self, id: _Optional[int] = ..., ns: _Optional[str] = ..., prefixes: _Optional[_Iterable[str]] = ..., names: _Optional[_Iterable[_Union[NameQuery, _Mapping]]] = ...) -> None: ...

class NameQuery(_message.Message):
    __slots__ = ("prefix", "leaves")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    leaves: bytes
    def __init__(self, prefix: _Optional[str] = ..., leaves: _Optional[bytes] = ...) -> None: ...

class NodeAnswer(_message.Message):
    __slots__ = ("prefix", "children", "leaves", "is_leaves")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    IS_LEAVES_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    children: bytes
    leaves: bytes
    is_leaves: bool
    def __init__(self, prefix: _Optional[str] = ..., children: _Optional[bytes] = ..., leaves: _Optional[bytes] = ..., is_leaves: _Optional[bool] = ...) -> None: ...

class DigestAnswer(_message.Message):
    __slots__ = ("id", "ns", "rev", "nodes", "names")
    ID_FIELD_NUMBER: _ClassVar[int]
    NS_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    id: int
    ns: str
    rev: int
    nodes: _containers.RepeatedCompositeFieldContainer[NodeAnswer]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[int] = ..., ns: _Optional[str] = ..., rev: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[NodeAnswer, _Mapping]]] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class KeyRef(_message.Message):
    __slots__ = ("ns", "key")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: str
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class Repair(_message.Message):
    __slots__ = ("id", "rev", "entries", "deletes", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DELETES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    rev: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    deletes: _containers.RepeatedCompositeFieldContainer[KeyRef]
    reason: str
    def __init__(self, id: _Optional[int] = ..., rev: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., deletes: _Optional[_Iterable[_Union[KeyRef, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class SyncReply(_message.Message):
    __slots__ = ("batch", "progress", "resync", "chunk", "heartbeat", "query", "repair")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESYNC_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    batch: ChangeBatch
    progress: Progress
    resync: Resync
    chunk: SnapshotChunk
    heartbeat: Heartbeat
    query: DigestQuery
    repair: Repair
    def __init__(self, batch: _Optional[_Union[ChangeBatch, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., resync: _Optional[_Union[Resync, _Mapping]] = ..., chunk: _Optional[_Union[SnapshotChunk, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., query: _Optional[_Union[DigestQuery, _Mapping]] = ..., repair: _Optional[_Union[Repair, _Mapping]] = ...) -> None: ...
