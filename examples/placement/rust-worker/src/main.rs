//! The placement example's Rust worker: it follows namespace `jobs`, where the
//! Go controller writes `{"node": ..., "image": ...}` per job, and "runs" the
//! jobs placed on its node: one file per job under `STATE_DIR/running/`,
//! holding the placement, written on start and removed on stop. A placement
//! that is not one (no string `node` and `image`, or a key that is no job
//! name) is refused: the worker NACKs it and keeps the last good value, so the
//! job keeps running where it was.
//!
//! ```text
//! cargo run -p placement-worker -- --node node-a --state-dir ./node-a
//! ```

mod jobs;

use std::path::PathBuf;
use std::process::ExitCode;

use statesync_worker::{ChangeEvent, Worker};
use tokio::signal::unix::{SignalKind, signal};

use crate::jobs::Jobs;

const USAGE: &str = "usage: placement-worker --node NAME --state-dir DIR [--server HOST:PORT] [--ns NS]

Runs the jobs that the statesync controller at --server (default $STATESYNC_SERVER, else
127.0.0.1:7700) places on node NAME in namespace --ns (default jobs). Each running job is a
file DIR/running/JOB.json holding its placement; the worker's replica is in DIR/replica.
It prints `start`, `stop` and `refuse` lines as it acts and stops on SIGINT or SIGTERM.
The worker id is the node name.";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Args {
    node: String,
    state_dir: PathBuf,
    server: String,
    ns: String,
}

/// Parses the command line; `Ok(None)` when only the help was asked for.
fn parse(
    mut args: impl Iterator<Item = String>,
    default_server: Option<String>,
) -> Result<Option<Args>, String> {
    let (mut node, mut state_dir, mut server, mut ns) = (None, None, default_server, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--node" => node = Some(value("--node")?),
            "--state-dir" => state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--server" => server = Some(value("--server")?),
            "--ns" => ns = Some(value("--ns")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args {
        node: node.ok_or("--node is required")?,
        state_dir: state_dir.ok_or("--state-dir is required")?,
        server: server.unwrap_or_else(|| "127.0.0.1:7700".to_owned()),
        ns: ns.unwrap_or_else(|| "jobs".to_owned()),
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1), std::env::var("STATESYNC_SERVER").ok()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("placement-worker: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut jobs = match Jobs::open(args.state_dir.join("running"), &args.node) {
        Ok(jobs) => jobs,
        Err(err) => {
            eprintln!("placement-worker: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (mut interrupt, mut terminate) =
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
            (Err(err), _) | (_, Err(err)) => {
                eprintln!("placement-worker: cannot handle signals: {err}");
                return ExitCode::FAILURE;
            }
        };
    let address = if args.server.contains("://") {
        args.server
    } else {
        format!("http://{}", args.server)
    };
    let worker = Worker::builder(address)
        .worker_id(args.node.clone())
        .namespace(args.ns)
        .data_dir(args.state_dir.join("replica"))
        .handler(move |change: &ChangeEvent<'_>| jobs.on_change(change))
        .start();
    let worker = match worker {
        Ok(worker) => worker,
        Err(err) => {
            eprintln!("placement-worker: {err}");
            return ExitCode::from(2);
        }
    };
    println!("{} following, at revision {}", args.node, worker.applied_rev());
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    match worker.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("placement-worker: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> impl Iterator<Item = String> {
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn the_server_defaults_to_the_environment_then_the_default_port() {
        let args = parse(strings(&["--node", "n1", "--state-dir", "d"]), Some("h:1".into()));
        assert_eq!(args.unwrap().unwrap().server, "h:1");
        let args = parse(strings(&["--node", "n1", "--state-dir", "d"]), None);
        let args = args.unwrap().unwrap();
        assert_eq!(
            (args.server.as_str(), args.ns.as_str()),
            ("127.0.0.1:7700", "jobs")
        );
    }

    #[test]
    fn missing_or_unknown_arguments_are_named() {
        let err = parse(strings(&["--state-dir", "d"]), None).unwrap_err();
        assert!(err.contains("--node"), "{err}");
        let err = parse(strings(&["--node", "n", "--state-dir", "d", "--x"]), None).unwrap_err();
        assert!(err.contains("\"--x\""), "{err}");
        assert_eq!(parse(strings(&["--help"]), None), Ok(None));
    }
}
