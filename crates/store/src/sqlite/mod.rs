//! The embedded store: one SQLite file in WAL mode, fsync on every commit.
//!
//! One committer thread owns the write connection. Callers enqueue prepared
//! commands; the committer takes everything queued (up to `max_batch`), lets
//! the core's [`Sequencer`] turn it into one [`BatchWrite`], writes that in a
//! single transaction and fsyncs once (`synchronous=FULL`), and only then
//! answers the callers. Concurrent commands therefore share one fsync (group
//! commit) and no caller is acknowledged before its command is on disk.
//!
//! A failed commit whose durability is unknown (an I/O error at COMMIT, such
//! as a failed fsync) stops the store from acknowledging anything until it is
//! restarted: a later fsync that succeeds says nothing about the pages of the
//! one that failed. A write refused for space is rolled back and reported; the
//! store serves again once space is freed.
//!
//! Readers take a connection from a pool; WAL gives them a consistent view
//! while the committer writes.
//!
//! The module's parts: `schema` (the file format and its rows), `committer`
//! (the thread that owns the write connection: group commit, maintenance,
//! compaction), `checkpointer` (the thread that copies the WAL into the
//! database file, off the commit path) and `reads` (pinned read
//! transactions, snapshots).

mod checkpointer;
mod committer;
mod reads;
mod schema;

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params, params_from_iter};
use statesync_core::command::{Command, check_key, check_readable_namespace};
use statesync_core::digest::U256;
use statesync_core::digest::{Hash, NamespaceDigest, Node, fingerprint, position};
use statesync_core::engine::KeyRecord;
use statesync_core::error::CommandError;
use statesync_core::log::{Change, ChangeOp, GENESIS_HASH, chain_hash};
use statesync_core::sequencer::{BatchWrite, CommandRecord, Gate, Outcome, Sequencer, keys_read};

use crate::StoreSettings;
use crate::error::StoreError;

use checkpointer::Checkpoints;
use committer::Committer;
pub use reads::Snapshot;
pub use schema::FORMAT_VERSION;
use schema::{SCHEMA, load_head, meta_int};

/// Answers a command once its group commit is durable (or failed).
pub type Reply = Box<dyn FnOnce(Outcome) + Send>;
/// Called after each durable group commit, before any of its writers is answered.
pub type Listener = Arc<dyn Fn(&BatchWrite) + Send + Sync>;
/// Runs the committer's callbacks (replies, listeners) inside one
/// scope per batch, e.g. one interpreter lock acquisition.
pub type Scope = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;
/// Seconds since the epoch.
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// A verified stretch of the hash chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// Exclusive: the chain is anchored at the compaction point.
    pub from_rev: i64,
    /// The head.
    pub to_rev: i64,
    /// Changes verified.
    pub changes: u64,
    /// The last hash.
    pub head_hash: Hash,
}

enum Job {
    Command(Command, Reply),
    Task(Box<dyn FnOnce(&mut Committer) + Send>),
}

struct Queue {
    jobs: VecDeque<Job>,
    closing: bool,
}

struct Shared {
    path: PathBuf,
    settings: StoreSettings,
    clock: Clock,
    queue: Mutex<Queue>,
    wake: Condvar,
    sequencer: Mutex<Sequencer>,
    head_rev: AtomicI64,
    compacted_rev: AtomicI64,
    closed: AtomicBool,
    failure: Mutex<Option<String>>,
    readers: Mutex<Vec<Connection>>,
    listeners: Mutex<Vec<Listener>>,
    gate: Mutex<Option<Box<dyn Gate + Send>>>,
    scope: Mutex<Option<Scope>>,
    checkpoints: Checkpoints,
}

/// The embedded, durable store. Open one per database file.
pub struct SqliteStore {
    shared: Arc<Shared>,
    committer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    /// Held from open to close: one process writes the file.
    lock: Mutex<Option<File>>,
}

fn lock(path: &Path) -> Result<File, StoreError> {
    let lock_path = path.with_file_name(format!(
        "{}.lock",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", lock_path.display()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StoreError::InUse {
                path: path.display().to_string(),
                holder: if holder.is_empty() {
                    "?".into()
                } else {
                    holder.into()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(std::process::id().to_string().as_bytes())
        .map_err(io)?;
    Ok(file)
}

fn connect(path: &Path, readonly: bool) -> rusqlite::Result<Connection> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if readonly {
        conn.pragma_update(None, "query_only", 1)?;
    }
    Ok(conn)
}

fn sql_error(path: &Path, what: &str, e: rusqlite::Error) -> StoreError {
    StoreError::Io(format!("{}: {what}: {e}", path.display()))
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`; `clock` defaults to the system clock.
    pub fn open(
        path: impl AsRef<Path>,
        settings: StoreSettings,
        clock: Option<Clock>,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Io(format!("{}: {e}", parent.display())))?;
        }
        let lock_file = lock(&path)?;
        let corrupt =
            |e: rusqlite::Error| StoreError::Corrupt(format!("cannot open {}: {e}", path.display()));
        let mut conn = connect(&path, false).map_err(corrupt)?;
        conn.execute_batch(SCHEMA).map_err(corrupt)?;
        let version: Option<rusqlite::types::Value> = conn
            .query_row("SELECT value FROM meta WHERE name = 'format_version'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(corrupt)?;
        match version {
            None => {
                conn.execute("INSERT INTO meta VALUES ('format_version', ?1)", [FORMAT_VERSION])
                    .map_err(corrupt)?;
            }
            Some(rusqlite::types::Value::Integer(FORMAT_VERSION)) => {}
            Some(other) => {
                let other = match other {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    _ => "?".into(),
                };
                return Err(StoreError::Corrupt(format!(
                    "{} has format version {other}; this statesync reads {FORMAT_VERSION}: \
                     open it with the statesync release that wrote it, or start from a snapshot \
                     (statesync load)",
                    path.display()
                )));
            }
        }
        let sequencer = load_head(&conn, &path, &settings)?;
        let compacted = meta_int(&conn, "compacted_rev").map_err(corrupt)?;
        let clock = clock.unwrap_or_else(|| {
            Arc::new(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            })
        });
        let shared = Arc::new(Shared {
            path: path.clone(),
            head_rev: AtomicI64::new(sequencer.head_rev),
            compacted_rev: AtomicI64::new(compacted),
            settings,
            clock: clock.clone(),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closing: false,
            }),
            wake: Condvar::new(),
            sequencer: Mutex::new(sequencer),
            closed: AtomicBool::new(false),
            failure: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            gate: Mutex::new(None),
            scope: Mutex::new(None),
            checkpoints: Checkpoints::default(),
        });
        // Replaces SQLite's automatic checkpoint (see `checkpointer`).
        let hooked = shared.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: i32| {
            hooked.checkpoints.committed(frames);
            Ok(())
        }))
        .map_err(corrupt)?;
        let checkpointer = checkpointer::start(shared.clone())?;
        let mut committer = Committer {
            shared: shared.clone(),
            conn,
            last_maintenance: clock(),
        };
        let name = format!(
            "statesync-committer:{}",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || committer.run())
            .map_err(|e| StoreError::Io(format!("cannot start the committer: {e}")))?;
        Ok(SqliteStore {
            shared,
            committer: Mutex::new(Some(handle)),
            checkpointer: Mutex::new(Some(checkpointer)),
            lock: Mutex::new(Some(lock_file)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &StoreSettings {
        &self.shared.settings
    }

    /// The last durable revision.
    pub fn head_rev(&self) -> i64 {
        self.shared.head_rev.load(Ordering::Acquire)
    }

    /// History at or below this revision is gone.
    pub fn compacted_rev(&self) -> i64 {
        self.shared.compacted_rev.load(Ordering::Acquire)
    }

    /// Closed (or closing): it takes no more commands.
    pub fn is_closed(&self) -> bool {
        lock_unpoisoned(&self.shared.queue).closing
    }

    /// Why the store stopped acknowledging writes, if it did.
    pub fn failure(&self) -> Option<String> {
        lock_unpoisoned(&self.shared.failure).clone()
    }

    /// Installs the gate (contracts and conflict policies) consulted by every group commit.
    pub fn set_gate(&self, gate: Box<dyn Gate + Send>) {
        *lock_unpoisoned(&self.shared.gate) = Some(gate);
    }

    /// Runs every batch's callbacks inside `scope`.
    pub fn set_scope(&self, scope: Scope) {
        *lock_unpoisoned(&self.shared.scope) = Some(scope);
    }

    /// Calls `listener(batch)` after each durable group commit, on the
    /// committer thread, before any of its writers is answered. Keep it quick.
    pub fn add_listener(&self, listener: Listener) {
        lock_unpoisoned(&self.shared.listeners).push(listener);
    }

    fn enqueue(&self, jobs: impl IntoIterator<Item = Job>) -> Result<(), StoreError> {
        let mut queue = lock_unpoisoned(&self.shared.queue);
        if queue.closing {
            return Err(StoreError::Closed);
        }
        queue.jobs.extend(jobs);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Queues prepared commands for the next group commit, together (the
    /// committer sees all of them or none); each reply is called exactly once.
    pub fn submit(&self, commands: Vec<(Command, Reply)>) {
        let failure = self.failure();
        if failure.is_none() {
            let mut queue = lock_unpoisoned(&self.shared.queue);
            if !queue.closing {
                queue
                    .jobs
                    .extend(commands.into_iter().map(|(c, r)| Job::Command(c, r)));
                self.shared.wake.notify_one();
                return;
            }
        }
        for (_, reply) in commands {
            let error = match &failure {
                Some(why) => StoreError::Failed(why.clone()),
                None => StoreError::Closed,
            };
            reply(Err(CommandError::Gate(Box::new(error))));
        }
    }

    /// Queues a command and waits for its outcome.
    pub fn commit(&self, command: Command) -> Result<Outcome, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reply: Reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        self.enqueue([Job::Command(command, reply)])?;
        rx.recv().map_err(|_| StoreError::Closed)
    }

    fn run_task<T: Send + 'static>(
        &self,
        task: impl FnOnce(&mut Committer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.enqueue([Job::Task(Box::new(move |c: &mut Committer| {
            let _ = tx.send(task(c));
        }))])?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Drops history at or below `rev`; reads at revisions >= `rev` still work.
    pub fn compact(&self, rev: i64) -> Result<(), StoreError> {
        let head = self.head_rev();
        if rev > head {
            return Err(StoreError::FutureRevision { rev, head });
        }
        self.run_task(move |c| c.compact(rev))
    }

    /// Applies retention now: forgets old command ids, auto-compacts.
    pub fn maintain(&self) -> Result<(), StoreError> {
        self.run_task(|c| {
            c.maintain();
            Ok(())
        })
    }

    /// Finishes queued commits, then closes. Idempotent.
    pub fn close(&self) {
        {
            let mut queue = lock_unpoisoned(&self.shared.queue);
            if queue.closing {
                return;
            }
            queue.closing = true;
            self.shared.wake.notify_one();
        }
        self.shared.checkpoints.close();
        if let Some(handle) = lock_unpoisoned(&self.checkpointer).take() {
            let _ = handle.join();
        }
        if let Some(handle) = lock_unpoisoned(&self.committer).take() {
            let _ = handle.join();
        }
        self.shared.closed.store(true, Ordering::Release);
        lock_unpoisoned(&self.shared.readers).clear();
        lock_unpoisoned(&self.lock).take();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock_unpoisoned<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking callback must not wedge the store: the data is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check_limit(limit: usize) -> Result<(), StoreError> {
    if limit < 1 {
        return Err(StoreError::invalid(format!(
            "limit is an integer >= 1, got {limit}"
        )));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
