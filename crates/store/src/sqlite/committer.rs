//! The committer thread: it owns the write connection and runs group
//! commits, maintenance (retention) and compaction, one at a time.

use super::schema::*;
use super::*;

/// The committer's private state: the write connection.
pub struct Committer {
    pub(super) shared: Arc<Shared>,
    pub(super) conn: Connection,
    pub(super) last_maintenance: f64,
}

impl Committer {
    pub(super) fn run(&mut self) {
        let interval = self.shared.settings.maintenance_interval_s;
        loop {
            let jobs = {
                let mut queue = lock_unpoisoned(&self.shared.queue);
                if queue.jobs.is_empty() && !queue.closing {
                    let timeout = std::time::Duration::from_secs_f64(interval.max(0.001));
                    queue = self
                        .shared
                        .wake
                        .wait_timeout(queue, timeout)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if queue.closing && queue.jobs.is_empty() {
                    return;
                }
                self.take_batch(&mut queue.jobs)
            };
            match jobs {
                Batch::Task(task) => task(self),
                Batch::Commands(commands) if !commands.is_empty() => self.group_commit(commands),
                Batch::Commands(_) => {}
            }
            if (self.shared.clock)() - self.last_maintenance >= interval {
                self.maintain();
            }
        }
    }

    fn take_batch(&self, queue: &mut VecDeque<Job>) -> Batch {
        let settings = &self.shared.settings;
        let mut commands = Vec::new();
        let mut ops = 0;
        while commands.len() < settings.max_batch {
            match queue.front() {
                Some(Job::Task(_)) if commands.is_empty() => {
                    let Some(Job::Task(task)) = queue.pop_front() else {
                        unreachable!()
                    };
                    return Batch::Task(task);
                }
                Some(Job::Command(command, _)) => {
                    // Bound a group by ops too: a bulk load must not hold every
                    // writer behind one giant transaction.
                    ops += command.ops.len();
                    if !commands.is_empty() && ops > settings.max_batch_ops {
                        break;
                    }
                    let Some(Job::Command(command, reply)) = queue.pop_front() else {
                        unreachable!()
                    };
                    commands.push((command, reply));
                }
                _ => break,
            }
        }
        Batch::Commands(commands)
    }

    fn scoped(&self, f: &mut dyn FnMut()) {
        let scope = lock_unpoisoned(&self.shared.scope).clone();
        match scope {
            Some(scope) => scope(f),
            None => f(),
        }
    }

    fn group_commit(&mut self, jobs: Vec<(Command, Reply)>) {
        let (commands, replies): (Vec<Command>, Vec<Reply>) = jobs.into_iter().unzip();
        let failure = lock_unpoisoned(&self.shared.failure).clone();
        let outcomes: Vec<Outcome> = match failure {
            Some(why) => commands.iter().map(|_| Err(failed(&why))).collect(),
            None => self.build_and_write(&commands),
        };
        let mut pending = Some((replies, outcomes));
        self.scoped(&mut || {
            if let Some((replies, outcomes)) = pending.take() {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    reply(outcome);
                }
            }
        });
    }

    fn build_and_write(&mut self, commands: &[Command]) -> Vec<Outcome> {
        let shared = self.shared.clone();
        let (head, known) = match self.prefetch(commands) {
            Ok(found) => found,
            Err(e) => {
                let why = format!("{}: commit failed: {e}", shared.path.display());
                return commands.iter().map(|_| Err(io_error(&why))).collect();
            }
        };
        let now_ms = ((shared.clock)() * 1000.0) as i64;
        let mut sequencer = lock_unpoisoned(&shared.sequencer);
        let mut gate = lock_unpoisoned(&shared.gate);
        let (mut outcomes, batch) = {
            let mut read = |ns: &str, key: &str| head.get(&(ns.to_owned(), key.to_owned())).cloned();
            let mut lookup = |id: &str| known.get(id).cloned();
            let gate: Option<&mut (dyn Gate + Send)> = gate.as_deref_mut();
            // No scope: the gate is Rust, and enters a host language itself
            // only for what it hands over (a contract registration).
            sequencer.build(
                commands,
                &mut read,
                &mut lookup,
                now_ms,
                gate.map(|g| g as &mut dyn Gate),
            )
        };
        if batch.is_empty() {
            return outcomes;
        }
        match self.write(&batch) {
            Ok(()) => {
                sequencer.confirm(&batch);
                shared.head_rev.store(batch.head_rev, Ordering::Release);
                drop(sequencer);
                let listeners = lock_unpoisoned(&shared.listeners).clone();
                if !listeners.is_empty() {
                    self.scoped(&mut || {
                        for listener in &listeners {
                            listener(&batch);
                        }
                    });
                }
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                sequencer.abort(&batch);
                let error: Box<dyn Fn() -> CommandError> = match classify(&e) {
                    WriteFailure::Full => {
                        let why = format!(
                            "{}: the disk is full: nothing was written; free space and retry \
                             (the same command id is safe to retry)",
                            shared.path.display()
                        );
                        Box::new(move || io_error(&why))
                    }
                    WriteFailure::Unknown => {
                        let why = format!(
                            "{}: a commit's durability is unknown ({e}); the store acknowledges no \
                             more writes until it is reopened (restart the controller); retrying with \
                             the same command id after the restart is safe",
                            shared.path.display()
                        );
                        *lock_unpoisoned(&shared.failure) = Some(why.clone());
                        Box::new(move || failed(&why))
                    }
                    WriteFailure::Other => {
                        let why = format!("{}: commit failed: {e}", shared.path.display());
                        Box::new(move || io_error(&why))
                    }
                };
                for outcome in &mut outcomes {
                    if matches!(outcome, Ok(c) if !c.replayed) {
                        *outcome = Err(error());
                    }
                }
            }
        }
        outcomes
    }

    #[allow(clippy::type_complexity)]
    fn prefetch(
        &self,
        commands: &[Command],
    ) -> rusqlite::Result<(
        HashMap<(String, String), KeyRecord>,
        HashMap<String, CommandRecord>,
    )> {
        let mut by_ns: HashMap<String, Vec<String>> = HashMap::new();
        for (ns, key) in keys_read(commands) {
            by_ns.entry(ns).or_default().push(key);
        }
        let mut head = HashMap::new();
        for (ns, keys) in by_ns {
            for chunk in keys.chunks(PREFETCH) {
                let sql = format!(
                    "SELECT key, value, create_rev, mod_rev, version FROM kv WHERE ns = ? AND key IN ({})",
                    vec!["?"; chunk.len()].join(",")
                );
                let mut stmt = self.conn.prepare_cached(&sql)?;
                let args = std::iter::once(&ns).chain(chunk.iter());
                let mut rows = stmt.query(params_from_iter(args))?;
                while let Some(r) = rows.next()? {
                    let record = KeyRecord {
                        ns: ns.clone(),
                        key: r.get(0)?,
                        value: r.get(1)?,
                        create_rev: r.get(2)?,
                        mod_rev: r.get(3)?,
                        version: r.get(4)?,
                    };
                    head.insert((ns.clone(), record.key.clone()), record);
                }
            }
        }
        let ids: Vec<&String> = commands.iter().map(|c| &c.command_id).collect();
        let mut known = HashMap::new();
        for chunk in ids.chunks(PREFETCH) {
            let sql = format!(
                "SELECT command_id, fingerprint, rev, ts_ms FROM commands WHERE command_id IN ({})",
                vec!["?"; chunk.len()].join(",")
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(chunk.iter()))?;
            while let Some(r) = rows.next()? {
                let record = CommandRecord {
                    command_id: r.get(0)?,
                    fingerprint: hash_of(r.get(1)?),
                    rev: r.get(2)?,
                    ts_ms: r.get(3)?,
                };
                known.insert(record.command_id.clone(), record);
            }
        }
        Ok((head, known))
    }

    fn write(&mut self, batch: &BatchWrite) -> rusqlite::Result<()> {
        let conn = &self.conn;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut delete = conn.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")?;
            let mut put =
                conn.prepare_cached("INSERT OR REPLACE INTO kv VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
            for ((ns, key), record) in &batch.state {
                match record {
                    None => {
                        delete.execute(params![ns, key])?;
                    }
                    Some(r) => {
                        let vhash = &batch.value_hashes[&(ns.clone(), key.clone())];
                        put.execute(params![
                            ns,
                            key,
                            r.value,
                            &vhash[..],
                            r.create_rev,
                            r.mod_rev,
                            r.version,
                            pos_of(key)
                        ])?;
                    }
                }
            }
            let mut log = conn.prepare_cached(&format!(
                "INSERT INTO log ({LOG_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))?;
            for c in &batch.changes {
                log.execute(params![
                    c.rev,
                    c.seq,
                    c.ns,
                    c.key,
                    c.op.as_str(),
                    c.value,
                    c.prev_mod_rev,
                    c.create_rev,
                    c.version,
                    c.command_id,
                    c.ts_ms,
                    c.trace,
                    &c.hash[..]
                ])?;
            }
            let mut command = conn.prepare_cached("INSERT INTO commands VALUES (?1, ?2, ?3, ?4)")?;
            for c in &batch.commands {
                command.execute(params![c.command_id, &c.fingerprint[..], c.rev, c.ts_ms])?;
            }
            let mut root = conn.prepare_cached("INSERT INTO digests VALUES (?1, ?2, ?3, ?4)")?;
            for r in &batch.roots {
                root.execute(params![r.ns, r.rev, &r.root[..], r.count as i64])?;
            }
            let mut meta = conn.prepare_cached("INSERT OR REPLACE INTO meta VALUES (?1, ?2)")?;
            meta.execute(params!["head_rev", batch.head_rev])?;
            meta.execute(params!["chain_head", &batch.chain_head[..]])?;
        }
        conn.execute_batch("COMMIT") // synchronous=FULL: the WAL is fsynced here
    }

    pub(super) fn maintain(&mut self) {
        let now = (self.shared.clock)();
        self.last_maintenance = now;
        if lock_unpoisoned(&self.shared.failure).is_some() {
            return; // nothing more is written until a restart
        }
        let settings = self.shared.settings.clone();
        let result = (|| -> Result<(), StoreError> {
            let cutoff_ms = ((now - settings.idempotency_retention_s) * 1000.0) as i64;
            self.conn
                .execute("DELETE FROM commands WHERE ts_ms < ?1", [cutoff_ms])
                .map_err(|e| sql_error(&self.shared.path, "maintenance", e))?;
            let target = self
                .auto_compaction_target(now)
                .map_err(|e| sql_error(&self.shared.path, "maintenance", e))?;
            if target > self.shared.compacted_rev.load(Ordering::Acquire) {
                self.compact(target)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn auto_compaction_target(&self, now: f64) -> rusqlite::Result<i64> {
        let settings = &self.shared.settings;
        let mut target = 0;
        if let Some(keep) = settings.history_retention_revisions {
            target = target.max(self.shared.head_rev.load(Ordering::Acquire) - keep);
        }
        if let Some(age) = settings.history_retention_s {
            let cutoff_ms = ((now - age) * 1000.0) as i64;
            let compacted = self.shared.compacted_rev.load(Ordering::Acquire);
            let newest: Option<i64> = self.conn.query_row(
                "SELECT max(rev) FROM log WHERE ts_ms < ?1 AND rev > ?2",
                params![cutoff_ms, compacted],
                |r| r.get(0),
            )?;
            target = target.max(newest.unwrap_or(0));
        }
        Ok(target)
    }

    pub(super) fn compact(&mut self, rev: i64) -> Result<(), StoreError> {
        if let Some(why) = lock_unpoisoned(&self.shared.failure).clone() {
            return Err(StoreError::Failed(why));
        }
        let compacted = self.shared.compacted_rev.load(Ordering::Acquire);
        if rev <= compacted {
            return Ok(());
        }
        let path = self.shared.path.clone();
        let conn = &self.conn;
        let result = (|| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let anchor: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT hash FROM log WHERE rev <= ?1 AND rev > ?2 ORDER BY rev DESC, seq DESC LIMIT 1",
                    params![rev, compacted],
                    |r| r.get(0),
                )
                .optional()?;
            // Keep each key's newest put at or below `rev`, so reads at `rev` still work.
            conn.execute(
                "DELETE FROM log WHERE rev <= ?1 AND (op = 'delete' OR rev < (
                     SELECT max(l2.rev) FROM log l2
                     WHERE l2.ns = log.ns AND l2.key = log.key AND l2.rev <= ?1))",
                [rev],
            )?;
            conn.execute(
                "DELETE FROM digests WHERE rev < (
                     SELECT max(d2.rev) FROM digests d2 WHERE d2.ns = digests.ns AND d2.rev <= ?1)",
                [rev],
            )?;
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('compacted_rev', ?1)", [rev])?;
            if let Some(anchor) = anchor {
                conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('chain_anchor', ?1)",
                    [anchor],
                )?;
            }
            conn.execute_batch("COMMIT")
        })();
        match result {
            Ok(()) => {
                self.shared.compacted_rev.store(rev, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(sql_error(&path, "compaction failed", e))
            }
        }
    }
}

pub(super) enum Batch {
    Task(Box<dyn FnOnce(&mut Committer) + Send>),
    Commands(Vec<(Command, Reply)>),
}

pub(super) enum WriteFailure {
    /// Refused for space: rolled back, nothing written.
    Full,
    /// An I/O error at or around COMMIT: what reached the disk is unknown.
    Unknown,
    /// Anything else (rolled back).
    Other,
}

pub(super) fn classify(e: &rusqlite::Error) -> WriteFailure {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => WriteFailure::Full,
        Some(ErrorCode::SystemIoFailure) => WriteFailure::Unknown,
        _ => WriteFailure::Other,
    }
}

fn failed(why: &str) -> CommandError {
    CommandError::Gate(Box::new(StoreError::Failed(why.to_owned())))
}

fn io_error(why: &str) -> CommandError {
    CommandError::Gate(Box::new(StoreError::Io(why.to_owned())))
}
