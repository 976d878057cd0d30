//! A worker that prints each applied change, one JSON-ish line per change.
//!
//! ```text
//! cargo run --example worker -- --address http://127.0.0.1:7070 --worker-id w1 \
//!     --namespace routes --data-dir /tmp/w1 [--deltas]
//! ```

use std::process::ExitCode;

use statesync_worker::{ChangeEvent, Op, Worker};

const USAGE: &str = "usage: worker --address URL --worker-id ID --namespace NS [--namespace NS ...] \
[--data-dir DIR] [--deltas]

Follows the namespaces of the statesync controller at URL (http://host:port) and prints each
change it applies, until interrupted (Ctrl-C stops it gracefully).";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut address = None::<String>;
    let (mut worker_id, mut namespaces, mut data_dir, mut deltas) = (None, Vec::new(), None, false);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let parsed = match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--address" => value("--address").map(|v| address = Some(v)),
            "--worker-id" => value("--worker-id").map(|v| worker_id = Some(v)),
            "--namespace" => value("--namespace").map(|v| namespaces.push(v)),
            "--data-dir" => value("--data-dir").map(|v| data_dir = Some(v)),
            "--deltas" => {
                deltas = true;
                Ok(())
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(err) = parsed {
            eprintln!("worker: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let Some(address) = address else {
        eprintln!("worker: --address is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let mut builder = Worker::builder(address)
        .worker_id(worker_id.unwrap_or_default())
        .deltas(deltas)
        .handler(|change: &ChangeEvent<'_>| {
            let op = if change.op == Op::Put { "put" } else { "delete" };
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
    for ns in namespaces {
        builder = builder.namespace(ns);
    }
    if let Some(dir) = data_dir {
        builder = builder.data_dir(dir);
    }
    let worker = match builder.start() {
        Ok(worker) => worker,
        Err(err) => {
            eprintln!("worker: {err}");
            return ExitCode::from(2);
        }
    };
    let mut status = worker.watch();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = status.borrow_and_update().clone();
                println!("status applied_rev={} connected={} last_end={:?}", now.applied_rev, now.connected, now.last_end);
            }
        }
    }
    match worker.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("worker: {err}");
            ExitCode::FAILURE
        }
    }
}
