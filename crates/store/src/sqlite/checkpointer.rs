//! The checkpointer thread: it copies the WAL's committed pages into the
//! database file on its own connection (PASSIVE checkpoints), so that a
//! commit never does it. SQLite's automatic checkpoint runs inside the commit
//! that crosses its threshold, on the committer thread, holding up that group
//! commit's writers and every command queued behind it.
//!
//! A checkpoint that fails for I/O leaves the WAL as it was (the committed
//! pages are still there, and a restart replays them) but says the database
//! file may not hold what it should: like a commit whose durability is
//! unknown, the store stops acknowledging until it is reopened.

use super::*;
use committer::{WriteFailure, classify};

/// Frames in the WAL after a commit at which a checkpoint is asked for
/// (SQLite's own automatic threshold).
pub(super) const CHECKPOINT_FRAMES: i32 = 1000;

/// The committer's side: asks for checkpoints; the thread waits for them.
#[derive(Default)]
pub(super) struct Checkpoints {
    state: Mutex<Requests>,
    wake: Condvar,
}

#[derive(Default)]
struct Requests {
    asked: bool,
    closing: bool,
}

impl Checkpoints {
    /// A commit left `frames` frames in the WAL.
    pub(super) fn committed(&self, frames: i32) {
        if frames >= CHECKPOINT_FRAMES {
            lock_unpoisoned(&self.state).asked = true;
            self.wake.notify_one();
        }
    }

    pub(super) fn close(&self) {
        lock_unpoisoned(&self.state).closing = true;
        self.wake.notify_one();
    }

    /// Waits for a request; false once closing.
    fn wait(&self) -> bool {
        let mut state = lock_unpoisoned(&self.state);
        while !state.asked && !state.closing {
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.asked = false;
        !state.closing
    }
}

/// Starts the thread; it stops when `shared.checkpoints` is closed.
pub(super) fn start(shared: Arc<Shared>) -> Result<JoinHandle<()>, StoreError> {
    let conn = connect(&shared.path, false).map_err(|e| sql_error(&shared.path, "checkpointer", e))?;
    let name = format!(
        "statesync-checkpointer:{}",
        shared
            .path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(&shared, &conn))
        .map_err(|e| StoreError::Io(format!("cannot start the checkpointer: {e}")))
}

fn run(shared: &Shared, conn: &Connection) {
    while shared.checkpoints.wait() {
        if lock_unpoisoned(&shared.failure).is_some() {
            continue; // nothing is written until a restart
        }
        // Busy (a reader still needs older pages) is not an error: what can be
        // copied is, and the next commit over the threshold asks again.
        let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) else {
            continue;
        };
        if !matches!(classify(&e), WriteFailure::Unknown) {
            // A full disk, say: the log keeps growing; the next commit asks again.
            log::warn!(
                "{}: checkpoint failed: {e}; retried after the next commit",
                shared.path.display()
            );
            continue;
        }
        let why = format!(
            "{}: a checkpoint failed ({e}); the store acknowledges no more writes until it is \
             reopened (restart the controller): the log still holds every acknowledged write",
            shared.path.display()
        );
        log::error!("{why}");
        *lock_unpoisoned(&shared.failure) = Some(why);
    }
}
