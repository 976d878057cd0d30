//! Why a native call failed, and how the failure reaches the client.
//!
//! The server does not know the product's error tree: the messages, the
//! classes and their gRPC statuses are drawn once, in Python
//! (`statesync.core.errors`, `statesync.wire`). It hands every failure to an
//! [`ErrorReporter`], which the binding implements by building the Python
//! exception, so a client rebuilds exactly the error the Python server sent.

use statesync_core::error::CommandError;
use statesync_core::sync::controller::ProtocolError;
use statesync_store::StoreError;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::proto;
pub use crate::sync::NoTranslationPath;

pub use crate::proto::ERROR_METADATA_KEY;

/// A refusal or failure of a native call.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// A command was refused (its shape, names, values, compares or the gate).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The store failed or refused a read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A request argument is out of range (`InvalidInputError`).
    #[error("{0}")]
    InvalidInput(String),
    /// A worker broke the sync protocol (`ProtocolError`).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A worker declared no registered schema version of a namespace
    /// (`NoTranslationPathError`).
    #[error(transparent)]
    NoTranslationPath(#[from] NoTranslationPath),
}

/// A failure as the client sees it: a gRPC status code and the
/// `statesync.v1.Error` (whose message is also the status message).
#[derive(Clone, Debug, PartialEq)]
pub struct Reported {
    /// The status code.
    pub code: Code,
    /// The typed error.
    pub error: proto::Error,
}

impl Reported {
    /// The status of a failed call: code, message and the error in the
    /// trailing metadata.
    pub fn into_status(self) -> Status {
        let mut metadata = MetadataMap::new();
        metadata.insert_bin(
            ERROR_METADATA_KEY,
            MetadataValue::from_bytes(&prost::Message::encode_to_vec(&self.error)),
        );
        Status::with_metadata(self.code, self.error.message, metadata)
    }
}

/// Turns failures into what the client receives. Called only on the error
/// path, from a blocking thread (it may take the interpreter's lock).
pub trait ErrorReporter: Send + Sync + 'static {
    /// The status code and typed error for `error`.
    fn report(&self, error: NativeError) -> Reported;
}

/// Why the server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address as given.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The control plane's address is not a valid URI authority.
    #[error("invalid control-plane address {0:?}")]
    Upstream(String),
    /// The transport failed while serving.
    #[error("serving failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}
