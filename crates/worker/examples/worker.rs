//! A worker that prints each applied change, one line per change.
//!
//! ```text
//! cargo run --example worker -- --address 127.0.0.1:7070 --worker-id w1 \
//!     --namespace routes --data-dir /tmp/w1 [--deltas] [--reject-key routes/blocked] [--events changes] \
//!     [--versions routes=1,2] [--schema routes=routes.schema.json]
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use statesync_core::validate::Schema;
use statesync_worker::{ChangeEvent, Op, Reject, Worker};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: worker --address ADDRESS --worker-id ID --namespace NS [--namespace NS ...] \
[--data-dir DIR] [--deltas] [--heartbeat SECONDS] [--reject-key NS/KEY ...] [--events changes|revs] \
[--versions NS=V1,V2 ...] [--schema NS=FILE ...]

Follows the namespaces of the statesync controller at ADDRESS (host:port or http://host:port)
and prints each change it applies, until SIGINT or SIGTERM stops it gracefully (exit 0). The
handler refuses (NACKs) every change to a key given with --reject-key, keeping its last good value.

--versions NS=V1,V2 declares the schema versions this worker understands in NS (repeatable; the
lists add up): the controller serves NS in the newest of them that is registered, translated,
and every value applied to NS is validated against the schema registered for its version.
--schema NS=FILE also validates every value applied to NS against the JSON Schema (draft 2020-12,
formats asserted) in FILE (repeatable, one per namespace). A value that fails either is NACKed
with its first violation and the key keeps its last good value until a later change conforms.

--events prints JSON lines instead, for programs that measure the worker: `revs` one
{\"applied_rev\":N,\"t\":UNIX} each time the applied revision advances (t: when the replica
holds it); `changes` also one {\"rev\":N,\"ns\":..,\"key\":..,\"op\":..,\"t\":UNIX} per change
applied, printed once its revision is applied.";

/// What `--events` asks to print.
#[derive(Clone, Copy, PartialEq)]
enum Events {
    Changes,
    Revs,
}

/// What the command line asks for.
struct Args {
    address: String,
    worker_id: String,
    namespaces: Vec<String>,
    data_dir: Option<String>,
    deltas: bool,
    heartbeat: Option<Duration>,
    reject: Vec<(String, String)>,
    events: Option<Events>,
    versions: BTreeMap<String, Vec<i32>>,
    schemas: BTreeMap<String, Schema>,
}

/// A change the handler accepted, printed once its revision is applied.
struct Pending {
    rev: i64,
    ns: String,
    key: String,
    op: &'static str,
}

/// Seconds since the Unix epoch, the clock the measuring program reads too.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Parses the command line; `Ok(None)` when only the help was asked for.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut address, mut worker_id) = (None, String::new());
    let (mut namespaces, mut data_dir, mut deltas) = (Vec::new(), None, false);
    let (mut heartbeat, mut reject, mut events) = (None, Vec::new(), None);
    let (mut versions, mut schemas) = (BTreeMap::<String, Vec<i32>>::new(), BTreeMap::new());
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--address" => address = Some(value("--address")?),
            "--worker-id" => worker_id = value("--worker-id")?,
            "--namespace" => namespaces.push(value("--namespace")?),
            "--data-dir" => data_dir = Some(value("--data-dir")?),
            "--deltas" => deltas = true,
            "--heartbeat" => {
                let text = value("--heartbeat")?;
                let seconds = text
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("--heartbeat {text:?} is not a number of seconds"))?;
                heartbeat = Some(seconds);
            }
            "--reject-key" => {
                let text = value("--reject-key")?;
                let (ns, key) = text
                    .split_once('/')
                    .ok_or_else(|| format!("--reject-key {text:?} is not NS/KEY"))?;
                reject.push((ns.to_owned(), key.to_owned()));
            }
            "--events" => {
                events = match value("--events")?.as_str() {
                    "changes" => Some(Events::Changes),
                    "revs" => Some(Events::Revs),
                    other => return Err(format!("--events {other:?} is not changes or revs")),
                };
            }
            "--versions" => {
                let (ns, list) = split_assignment("--versions", &value("--versions")?, "NS=V1,V2")?;
                for item in list.split(',') {
                    let version =
                        item.parse::<i32>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                            format!("--versions {ns}={list}: {item:?} is not a schema version")
                        })?;
                    versions.entry(ns.clone()).or_default().push(version);
                }
            }
            "--schema" => {
                let (ns, path) = split_assignment("--schema", &value("--schema")?, "NS=FILE")?;
                let schema = read_schema(&path).map_err(|e| format!("--schema {ns}={path}: {e}"))?;
                if schemas.insert(ns.clone(), schema).is_some() {
                    return Err(format!("--schema: namespace {ns:?} is given twice"));
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let address = address.ok_or("--address is required")?;
    Ok(Some(Args {
        address,
        worker_id,
        namespaces,
        data_dir,
        deltas,
        heartbeat,
        reject,
        events,
        versions,
        schemas,
    }))
}

/// `NS=REST` split at the first `=`, both sides non-empty.
fn split_assignment(flag: &str, text: &str, form: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((ns, rest)) if !ns.is_empty() && !rest.is_empty() => Ok((ns.to_owned(), rest.to_owned())),
        _ => Err(format!("{flag} {text:?} is not {form}")),
    }
}

/// The JSON Schema in the file at `path`, compiled.
fn read_schema(path: &str) -> Result<Schema, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let doc = statesync_core::value::parse(&text).map_err(|e| e.to_string())?;
    Schema::compile(&doc).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("worker: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let reject = args.reject;
    let events = args.events;
    let pending = Arc::new(Mutex::new(Vec::<Pending>::new()));
    let accepted = Arc::clone(&pending);
    let mut builder = Worker::builder(args.address)
        .worker_id(args.worker_id)
        .deltas(args.deltas)
        .handler(move |change: &ChangeEvent<'_>| {
            let op = if change.op == Op::Put { "put" } else { "delete" };
            if reject
                .iter()
                .any(|(ns, key)| ns == change.ns && key == change.key)
            {
                println!(
                    "rejected rev={} op={op} ns={} key={}",
                    change.rev, change.ns, change.key
                );
                return Err(Reject::new(format!(
                    "{}/{} is refused by --reject-key",
                    change.ns, change.key
                )));
            }
            match events {
                Some(Events::Changes) => {
                    // The handler runs before the change is stored: print it once its revision is applied.
                    let change = Pending {
                        rev: change.rev,
                        ns: change.ns.to_owned(),
                        key: change.key.to_owned(),
                        op,
                    };
                    accepted
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(change);
                    return Ok(());
                }
                Some(Events::Revs) => return Ok(()),
                None => {}
            }
            println!(
                "applied rev={} op={op} ns={} key={} value={} origin={:?}",
                change.rev,
                change.ns,
                change.key,
                change.value_text().unwrap_or("null"),
                change.origin
            );
            Ok(())
        });
    for ns in args.namespaces {
        builder = builder.namespace(ns);
    }
    for (ns, versions) in args.versions {
        builder = builder.versions(ns, versions);
    }
    for (ns, schema) in args.schemas {
        builder = builder.schema(ns, schema);
    }
    if let Some(dir) = args.data_dir {
        builder = builder.data_dir(dir);
    }
    if let Some(every) = args.heartbeat {
        builder = builder.heartbeat(every);
    }
    let (mut interrupt, mut terminate) =
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
            (Err(err), _) | (_, Err(err)) => {
                eprintln!("worker: cannot handle signals: {err}");
                return ExitCode::FAILURE;
            }
        };
    let worker = match builder.start() {
        Ok(worker) => worker,
        Err(err) => {
            eprintln!("worker: {err}");
            return ExitCode::from(2);
        }
    };
    let mut status = worker.watch();
    let mut printed_rev = 0;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = status.borrow_and_update().clone();
                if events.is_none() {
                    println!("status applied_rev={} connected={} last_end={:?}", now.applied_rev, now.connected, now.last_end);
                } else if now.applied_rev > printed_rev {
                    printed_rev = now.applied_rev;
                    print_applied(&pending, printed_rev);
                }
            }
        }
    }
    match worker.stop().await {
        Ok(()) => {
            if events.is_none() {
                println!("stopped");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("worker: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the pending changes of revisions up to `rev` and the revision, as
/// JSON lines, all stamped now (they were applied by the time the status said so).
fn print_applied(pending: &Mutex<Vec<Pending>>, rev: i64) {
    let t = unix_now();
    let mut changes = pending.lock().unwrap_or_else(PoisonError::into_inner);
    let mut lines = String::new();
    changes.retain(|change| {
        if change.rev > rev {
            return true;
        }
        let line = serde_json::json!({
            "rev": change.rev, "ns": change.ns, "key": change.key, "op": change.op, "t": t,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
        false
    });
    lines.push_str(&serde_json::json!({"applied_rev": rev, "t": t}).to_string());
    println!("{lines}");
}
