//! Decoding: the controller's `statesync.v1.Error` (or a bare status) and the
//! core's local refusals into [`Error`].

use serde_json::Value as Json;
use statesync_core::error::CommandError;
use statesync_proto::ERROR_METADATA_KEY;
use tonic::{Code, Status};

use super::{Error, FailedCompare, SchemaViolation, StoreErrorKind};

impl Error {
    /// The error a failed call's status carries; `address` names the
    /// controller in a transport failure.
    pub fn from_status(status: &Status, address: &str) -> Error {
        if let Some(value) = status.metadata().get_bin(ERROR_METADATA_KEY) {
            return match value
                .to_bytes()
                .ok()
                .and_then(|b| <statesync_proto::Error as prost::Message>::decode(b).ok())
            {
                Some(error) => Error::from_wire(error, status.code()),
                None => Error::Remote {
                    code: status_name(status.code()).to_owned(),
                    status: status.code(),
                    message: format!(
                        "{} (its {ERROR_METADATA_KEY} could not be decoded)",
                        status.message()
                    ),
                    detail: Json::Null,
                },
            };
        }
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Error::Unavailable {
                address: address.to_owned(),
                reason: transport_reason(status),
                command_id: None,
            },
            code => Error::Remote {
                code: status_name(code).to_owned(),
                status: code,
                message: format!("{}: {}", status_name(code), status.message()),
                detail: Json::Null,
            },
        }
    }

    /// The error a `statesync.v1.Error` describes (a failed call's metadata,
    /// or a failed command's reply on `CommitStream`). A known code whose
    /// fields are missing is kept whole as [`Error::Remote`].
    pub fn from_wire(error: statesync_proto::Error, status: Code) -> Error {
        let detail: Json = serde_json::from_slice(&error.detail).unwrap_or(Json::Null);
        decode(&error.code, &error.message, &detail).unwrap_or(Error::Remote {
            code: error.code,
            status,
            message: error.message,
            detail,
        })
    }

    /// Marks a commit's transport or storage failure with the command's id:
    /// its outcome is unknown.
    pub(crate) fn in_commit(mut self, id: &str) -> Error {
        if let Error::Unavailable { command_id, .. } | Error::Store { command_id, .. } = &mut self {
            *command_id = Some(id.to_owned());
        }
        self
    }
}

/// A refusal of the core's checks, made before anything is sent.
impl From<CommandError> for Error {
    fn from(error: CommandError) -> Error {
        match error {
            CommandError::InvalidNamespace { ns, reason } => Error::InvalidNamespace {
                namespace: ns,
                reason,
            },
            CommandError::InvalidKey { ns, key, reason } => Error::InvalidKey {
                namespace: ns,
                key,
                reason,
            },
            CommandError::InvalidValue {
                ns,
                key,
                path,
                reason,
            } => Error::InvalidValue {
                namespace: ns,
                key,
                path,
                reason,
            },
            CommandError::InvalidPatch {
                ns,
                key,
                index,
                path,
                reason,
            } => Error::InvalidPatch {
                namespace: ns,
                key,
                op_index: index.map(|i| i as u64),
                path,
                reason,
            },
            CommandError::InvalidCommand { reason, ns, key } => Error::InvalidCommand {
                namespace: ns,
                key,
                reason,
            },
            CommandError::ValueTooLarge { ns, key, size, limit } => Error::ValueTooLarge {
                namespace: ns,
                key,
                size: size as u64,
                limit: limit as u64,
            },
            CommandError::Conflict(failed) => Error::Conflict {
                failed: failed
                    .into_iter()
                    .map(|f| FailedCompare {
                        namespace: f.ns,
                        key: f.key,
                        expected: f.expected,
                        actual_mod_rev: f.actual_mod_rev,
                    })
                    .collect(),
            },
            CommandError::NotFound { ns, key } => Error::NotFound {
                namespace: ns,
                key,
                rev: None,
            },
            CommandError::CommandIdReused { command_id, rev } => Error::CommandIdReused {
                command_id,
                committed_rev: rev,
            },
            // The write gate's refusals come from the controller, decoded
            // from the wire; the client's own checks never make them.
            gate @ (CommandError::SchemaViolation { .. }
            | CommandError::MergeConflict { .. }
            | CommandError::NoTranslationPath { .. }
            | CommandError::Translation { .. }
            | CommandError::Gate(_)) => Error::InvalidInput {
                code: "InvalidInputError".into(),
                message: gate.to_string(),
                detail: Json::Null,
            },
        }
    }
}

/// The variant of a known `code` with its fields from `detail`; None for a
/// code this client does not know or a detail without the fields it needs.
fn decode(code: &str, message: &str, detail: &Json) -> Option<Error> {
    let d = Detail(detail);
    let store = |kind| Error::Store {
        kind,
        message: message.to_owned(),
        command_id: None,
    };
    Some(match code {
        "InvalidNamespaceError" => Error::InvalidNamespace {
            namespace: d.string("namespace")?,
            reason: d.string("reason")?,
        },
        "InvalidKeyError" => Error::InvalidKey {
            namespace: d.string("namespace")?,
            key: d.string("key")?,
            reason: d.string("reason")?,
        },
        "InvalidValueError" => Error::InvalidValue {
            namespace: d.optional_string("namespace")?,
            key: d.optional_string("key")?,
            path: d.string("path")?,
            reason: d.string("reason")?,
        },
        "InvalidPatchError" => Error::InvalidPatch {
            namespace: d.string("namespace")?,
            key: d.string("key")?,
            op_index: d.optional("op_index", |v| v.as_u64())?,
            path: d.optional_string("path")?,
            reason: d.string("reason")?,
        },
        "InvalidCommandError" => Error::InvalidCommand {
            namespace: d.optional_string("namespace")?,
            key: d.optional_string("key")?,
            reason: d.string("reason")?,
        },
        "ValueTooLargeError" => Error::ValueTooLarge {
            namespace: d.string("namespace")?,
            key: d.string("key")?,
            size: d.field("size")?.as_u64()?,
            limit: d.field("limit")?.as_u64()?,
        },
        "SchemaViolationError" => Error::SchemaViolation {
            namespace: d.string("namespace")?,
            key: d.string("key")?,
            schema_version: d.int("schema_version")?,
            violations: d
                .list("violations")?
                .iter()
                .map(|v| {
                    let v = Detail(v);
                    Some(SchemaViolation {
                        path: v.string("path")?,
                        keyword: v.string("keyword")?,
                        message: v.string("message")?,
                    })
                })
                .collect::<Option<_>>()?,
        },
        "CommandIdReusedError" => Error::CommandIdReused {
            command_id: d.string("command_id")?,
            committed_rev: d.int("committed_rev")?,
        },
        "FutureRevisionError" => Error::FutureRevision {
            requested_rev: d.int("requested_rev")?,
            head_rev: d.int("head_rev")?,
        },
        "InvalidInputError"
        | "InvalidSchemaError"
        | "IncompatibleSchemaError"
        | "InvalidTranslationError"
        | "NoTranslationPathError" => Error::InvalidInput {
            code: code.to_owned(),
            message: message.to_owned(),
            detail: detail.clone(),
        },
        "ConflictError" => Error::Conflict {
            failed: d
                .list("failed")?
                .iter()
                .map(|f| {
                    let f = Detail(f);
                    Some(FailedCompare {
                        namespace: f.string("namespace")?,
                        key: f.string("key")?,
                        expected: f.string("expected")?,
                        actual_mod_rev: f.optional("actual_mod_rev", |v| v.as_i64())?,
                    })
                })
                .collect::<Option<_>>()?,
        },
        "MergeConflictError" => Error::MergeConflict {
            namespace: d.string("namespace")?,
            key: d.string("key")?,
            base_rev: d.int("base_rev")?,
            current_mod_rev: d.int("current_mod_rev")?,
            conflicts: d.list("conflicts")?.clone(),
        },
        "NotFoundError" => Error::NotFound {
            namespace: d.string("namespace")?,
            key: d.string("key")?,
            rev: d.optional("rev", |v| v.as_i64())?,
        },
        "CompactedError" => Error::Compacted {
            requested_rev: d.int("requested_rev")?,
            compacted_rev: d.int("compacted_rev")?,
        },
        "UnavailableError" => Error::Unavailable {
            address: d.string("address")?,
            reason: d.string("reason")?,
            command_id: None,
        },
        "StoreError" => store(StoreErrorKind::Refused),
        "StoreClosedError" => store(StoreErrorKind::Closed),
        "StoreInUseError" => store(StoreErrorKind::InUse),
        "StoreFailedError" => store(StoreErrorKind::Failed),
        "StoreCorruptError" => store(StoreErrorKind::Corrupt),
        "ProtocolError" => Error::Protocol {
            message: message.to_owned(),
        },
        _ => return None,
    })
}

/// Typed reads of an error's `detail` object; None when a field is missing
/// or has the wrong type.
struct Detail<'a>(&'a Json);

impl Detail<'_> {
    fn field(&self, name: &str) -> Option<&Json> {
        self.0.get(name)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.field(name)?.as_str().map(str::to_owned)
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.field(name)?.as_i64()
    }

    fn list(&self, name: &str) -> Option<&Vec<Json>> {
        self.field(name)?.as_array()
    }

    /// A field that may be `null` or left out: Some(None) then, None when it
    /// has the wrong type.
    fn optional<T>(&self, name: &str, read: impl Fn(&Json) -> Option<T>) -> Option<Option<T>> {
        match self.field(name) {
            None | Some(Json::Null) => Some(None),
            Some(v) => read(v).map(Some),
        }
    }

    fn optional_string(&self, name: &str) -> Option<Option<String>> {
        self.optional(name, |v| v.as_str().map(str::to_owned))
    }
}

/// The status message with the transport's cause, which tonic keeps as the
/// status's source.
fn transport_reason(status: &Status) -> String {
    let reason = with_causes(status.message().to_owned(), std::error::Error::source(status));
    if reason.is_empty() {
        "no response".into()
    } else {
        reason
    }
}

/// `text` followed by each cause in the chain from `source`.
pub(in crate::client) fn with_causes(
    mut text: String,
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    while let Some(cause) = source {
        let shown = cause.to_string();
        // tonic repeats a message in its causes ("Timeout expired: transport error: Timeout expired").
        if text.is_empty() {
            text = shown;
        } else if !text.contains(&shown) {
            text = format!("{text}: {shown}");
        }
        source = cause.source();
    }
    text
}

/// The canonical gRPC name of a status code (`ABORTED`), as other clients print it.
fn status_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
