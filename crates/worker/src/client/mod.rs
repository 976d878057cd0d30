//! The writer client: commits commands and reads keys over the controller's
//! gRPC API, on tokio and tonic.
//!
//! It mirrors the Python client (`statesync.client.Client`): [`Client::commit`]
//! sends a [`Command`] (puts, patches, deletes, compares, an id, a trace
//! context), [`Client::get`] and [`Client::range`] read, and
//! [`Client::wait_applied`] blocks until workers have applied a revision.
//! Every failure is a typed [`Error`] decoded from the controller's
//! `statesync.v1.Error` (`docs/errors.md`), with [`Error::is_retryable`]; a
//! command is checked locally first, so a value that is not I-JSON fails
//! before the network with the namespace, key and JSON path.
//!
//! ```no_run
//! use serde_json::json;
//! use statesync_worker::client::{Client, Command, Error};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("127.0.0.1:7700").await?;
//! let committed = client.put("routes", "web", json!({"port": 80})).await?;
//!
//! // Compare-and-set: write only if nobody changed the key since.
//! let command = Command::new()
//!     .put("routes", "web", json!({"port": 81}))
//!     .compare_mod_rev("routes", "web", committed.rev);
//! match client.commit(&command).await {
//!     Ok(done) => println!("committed at {}", done.rev),
//!     Err(Error::Conflict { failed }) => println!("changed since: {failed:?}"),
//!     // Unknown outcome: the same command (same id) is safe to send again.
//!     Err(e) if e.unknown_outcome().is_some() => { client.commit(&command).await?; }
//!     Err(e) => return Err(e.into()),
//! }
//!
//! let record = client.get("routes", "web").await?.expect("written above");
//! assert_eq!(record.json()?, json!({"port": 81}));
//! # Ok(())
//! # }
//! ```

mod command;
mod error;

use std::time::Duration;

use statesync_proto::statesync_client::StatesyncClient;
use statesync_proto::{
    GetRequest, RangePage, RangeRequest, StatusReply, StatusRequest, WaitAppliedRequest, WorkerStatus,
};
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

pub use command::{Command, Put};
pub use error::{Error, FailedCompare, SchemaViolation, StoreErrorKind};

/// The largest message sent or received (a range page or a large command).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The endpoint of a controller at `address`: `host:port` (plaintext HTTP/2)
/// or a URI such as `http://host:port`. Err names the address and the fault.
pub(crate) fn endpoint(address: &str) -> Result<Endpoint, String> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    Endpoint::from_shared(uri).map_err(|e| format!("invalid controller address {address:?}: {e}"))
}

/// A command's outcome: durable at `rev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The revision the command was committed at.
    pub rev: i64,
    /// Its id.
    pub command_id: String,
    /// The controller's commit time, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// True when the id had been committed before: this is the original
    /// outcome, and nothing was written again.
    pub replayed: bool,
}

/// A key's value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// The value as canonical JSON (RFC 8785).
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_rev: i64,
    /// The revision that last changed it.
    pub mod_rev: i64,
    /// How many times it was written since it was created (1: once).
    pub version: i64,
}

impl KeyRecord {
    /// The value as a `serde_json::Value`.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.value)
    }

    fn from_wire(entry: statesync_proto::Entry) -> KeyRecord {
        KeyRecord {
            namespace: entry.ns,
            key: entry.key,
            value: entry.value,
            create_rev: entry.create_rev,
            mod_rev: entry.mod_rev,
            version: entry.version,
        }
    }
}

/// What a range reads: keys with a prefix, at a revision, in pages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Only keys starting with this ("" : every key).
    pub prefix: String,
    /// The revision to read at (None: the head, pinned at the first page).
    pub rev: Option<i64>,
    /// Keys per page (None: the controller's default).
    pub page_size: Option<i32>,
}

/// One page of a range, read at `rev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The revision every page of the range is read at.
    pub rev: i64,
    /// The page's keys, in key order.
    pub records: Vec<KeyRecord>,
}

/// The pages of a range, as the controller streams them.
#[derive(Debug)]
pub struct Pages {
    stream: Streaming<RangePage>,
    address: String,
}

impl Pages {
    /// The next page, or None after the last.
    pub async fn next_page(&mut self) -> Result<Option<Page>, Error> {
        let page = self
            .stream
            .message()
            .await
            .map_err(|s| Error::from_status(&s, &self.address))?;
        Ok(page.map(|p| Page {
            rev: p.rev,
            records: p.entries.into_iter().map(KeyRecord::from_wire).collect(),
        }))
    }

    /// Every remaining key, in key order.
    pub async fn collect(mut self) -> Result<Vec<KeyRecord>, Error> {
        let mut records = Vec::new();
        while let Some(page) = self.next_page().await? {
            records.extend(page.records);
        }
        Ok(records)
    }
}

/// Which workers [`Client::wait_applied`] waits for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitFor {
    /// Every connected worker subscribed to one of these namespaces.
    pub namespaces: Vec<String>,
    /// Exactly these workers.
    pub workers: Vec<String>,
}

impl WaitFor {
    /// Every connected worker.
    pub fn all() -> WaitFor {
        WaitFor::default()
    }

    /// These workers, by id.
    pub fn workers<S: Into<String>>(ids: impl IntoIterator<Item = S>) -> WaitFor {
        WaitFor {
            workers: ids.into_iter().map(Into::into).collect(),
            ..WaitFor::default()
        }
    }

    /// The connected workers subscribed to one of these namespaces.
    pub fn namespaces<S: Into<String>>(names: impl IntoIterator<Item = S>) -> WaitFor {
        WaitFor {
            namespaces: names.into_iter().map(Into::into).collect(),
            ..WaitFor::default()
        }
    }
}

/// Which workers applied a revision in time.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitResult {
    /// The workers that acknowledged it.
    pub applied: Vec<String>,
    /// The connected workers that had not, with their status.
    pub pending: Vec<WorkerStatus>,
}

impl WaitResult {
    /// Every worker waited for applied the revision.
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty()
    }
}

/// A connection to a controller. Cloning is cheap and shares the connection.
#[derive(Clone, Debug)]
pub struct Client {
    grpc: StatesyncClient<Channel>,
    address: String,
    timeout: Duration,
}

impl Client {
    /// Connects to a controller at `address` (`host:port`, or a URI such as
    /// `http://host:port`); an unreachable one fails now, with
    /// [`Error::Unavailable`]. Calls time out after 30 seconds unless
    /// [`Client::with_timeout`] says otherwise. A broken connection is
    /// re-established by later calls.
    pub async fn connect(address: impl Into<String>) -> Result<Client, Error> {
        let address = address.into();
        let endpoint = endpoint(&address).map_err(|message| Error::InvalidInput {
            code: "InvalidInputError".into(),
            message,
            detail: serde_json::Value::Null,
        })?;
        let channel = endpoint.connect().await.map_err(|e| Error::Unavailable {
            address: address.clone(),
            reason: error::with_causes(e.to_string(), std::error::Error::source(&e)),
            command_id: None,
        })?;
        let grpc = StatesyncClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Client {
            grpc,
            address,
            timeout: Duration::from_secs(30),
        })
    }

    /// A client on an open `channel` to the controller at `address` (the
    /// worker reads contracts on its Sync connection).
    pub(crate) fn on_channel(channel: Channel, address: &str, timeout: Duration) -> Client {
        let grpc = StatesyncClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Client {
            grpc,
            address: address.to_owned(),
            timeout,
        }
    }

    /// The same connection with another per-call timeout (a call that
    /// times out fails with [`Error::Unavailable`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The controller's address, as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        request
    }

    fn failed(&self, status: tonic::Status) -> Error {
        Error::from_status(&status, &self.address)
    }

    /// Commits `command`: all its ops at one new revision, or none. It is
    /// checked first, so an invalid one fails before anything is sent. When
    /// the error's [`Error::unknown_outcome`] is set, send the same command
    /// again: its id makes that safe.
    pub async fn commit(&self, command: &Command) -> Result<Committed, Error> {
        let request = self.request(command.to_request()?, self.timeout);
        let reply = self
            .grpc
            .clone()
            .commit(request)
            .await
            .map_err(|s| self.failed(s).in_commit(command.id()))?
            .into_inner();
        Ok(Committed {
            rev: reply.rev,
            command_id: reply.command_id,
            ts_ms: reply.ts_ms,
            replayed: reply.replayed,
        })
    }

    /// Puts one value (a command of one op with a generated id).
    pub async fn put(&self, ns: &str, key: &str, value: serde_json::Value) -> Result<Committed, Error> {
        self.commit(&Command::new().put(ns, key, value)).await
    }

    /// Deletes one key (a command of one op with a generated id).
    pub async fn delete(&self, ns: &str, key: &str) -> Result<Committed, Error> {
        self.commit(&Command::new().delete(ns, key)).await
    }

    /// The key at the head, or None when it is absent.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<KeyRecord>, Error> {
        self.get_at(ns, key, 0).await
    }

    /// The key at revision `rev` (0: the head), or None when it was absent.
    pub async fn get_at(&self, ns: &str, key: &str, rev: i64) -> Result<Option<KeyRecord>, Error> {
        let message = GetRequest {
            ns: ns.to_owned(),
            key: key.to_owned(),
            rev,
        };
        let reply = self
            .grpc
            .clone()
            .get(self.request(message, self.timeout))
            .await
            .map_err(|s| self.failed(s))?
            .into_inner();
        Ok(reply.entry.map(KeyRecord::from_wire))
    }

    /// The keys of `ns` the options select, as a stream of pages; all read
    /// at one revision. [`Pages::collect`] gathers them.
    pub async fn range(&self, ns: &str, options: RangeOptions) -> Result<Pages, Error> {
        let message = RangeRequest {
            ns: ns.to_owned(),
            prefix: options.prefix,
            rev: options.rev.unwrap_or(0),
            page_size: options.page_size.unwrap_or(0),
        };
        // No deadline: a range streams as long as it has pages.
        let stream = self
            .grpc
            .clone()
            .range(tonic::Request::new(message))
            .await
            .map_err(|s| self.failed(s))?
            .into_inner();
        Ok(Pages {
            stream,
            address: self.address.clone(),
        })
    }

    /// Blocks until every worker `scope` names has acknowledged `rev`, or
    /// `timeout` passes; the result says who had and who had not.
    pub async fn wait_applied(
        &self,
        rev: i64,
        timeout: Duration,
        scope: WaitFor,
    ) -> Result<WaitResult, Error> {
        let message = WaitAppliedRequest {
            rev,
            namespaces: scope.namespaces,
            workers: scope.workers,
            timeout_s: timeout.as_secs_f64(),
        };
        // The controller answers at `timeout`; the call's deadline leaves it room.
        let deadline = timeout + Duration::from_secs(10);
        let reply = self
            .grpc
            .clone()
            .wait_applied(self.request(message, deadline))
            .await
            .map_err(|s| self.failed(s))?
            .into_inner();
        Ok(WaitResult {
            applied: reply.applied,
            pending: reply.pending,
        })
    }

    /// The controller's status: head and compacted revisions, every
    /// worker's progress and health, each namespace's digest.
    pub async fn status(&self) -> Result<StatusReply, Error> {
        let request = self.request(StatusRequest {}, self.timeout);
        let reply = self
            .grpc
            .clone()
            .status(request)
            .await
            .map_err(|s| self.failed(s))?;
        Ok(reply.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn an_address_is_host_port_or_a_uri() {
        let plain = endpoint("127.0.0.1:7070").unwrap();
        assert_eq!(plain.uri().to_string(), "http://127.0.0.1:7070/");
        let uri = endpoint("http://127.0.0.1:7070").unwrap();
        assert_eq!(uri.uri(), plain.uri());
        let bad = endpoint("no such host:70").unwrap_err();
        assert!(bad.contains("\"no such host:70\""), "{bad}");
    }
}
