//! A small writer on the Rust client: put a JSON value, read keys back, wait
//! for workers.
//!
//! ```text
//! writer [--server HOST:PORT] put NS KEY JSON [--if-rev N] [--command-id ID] [--timeout SECONDS]
//! writer [--server HOST:PORT] get NS KEY
//! writer [--server HOST:PORT] range NS [--prefix P] [--page-size N]
//! writer [--server HOST:PORT] wait REV [--worker ID]... [--timeout SECONDS]
//! ```
//!
//! The server (`host:port` or `http://host:port`) defaults to
//! `$STATESYNC_SERVER`, then `127.0.0.1:7700`. A
//! success prints one JSON object on stdout. A failure prints the error as a
//! JSON object on stderr (`error` is its code, then its fields) and exits with
//! the code's exit status from `docs/errors.md` (3 for a conflict, 4 for
//! invalid input, 5 when the controller is unreachable...); 2 is a usage error.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use statesync_worker::client::{Client, Command, Error, KeyRecord, RangeOptions, WaitFor};

const USAGE: &str =
    "usage: writer [--server HOST:PORT] put NS KEY JSON [--if-rev N] [--command-id ID] [--timeout SECONDS]
       writer [--server HOST:PORT] get NS KEY
       writer [--server HOST:PORT] range NS [--prefix P] [--page-size N]
       writer [--server HOST:PORT] wait REV [--worker ID]... [--timeout SECONDS]";

/// What to do, from the command line.
enum Action {
    Put {
        ns: String,
        key: String,
        json: String,
        if_rev: Option<i64>,
        command_id: Option<String>,
        timeout: Duration,
    },
    Get {
        ns: String,
        key: String,
    },
    Range {
        ns: String,
        options: RangeOptions,
    },
    Wait {
        rev: i64,
        workers: Vec<String>,
        timeout: Duration,
    },
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name} {text:?} is not a number"))
}

fn parse(args: Vec<String>) -> Result<(String, Action), String> {
    let mut server = std::env::var("STATESYNC_SERVER").unwrap_or_else(|_| "127.0.0.1:7700".into());
    let (mut if_rev, mut command_id, mut options) = (None, None, RangeOptions::default());
    let (mut workers, mut timeout) = (Vec::new(), Duration::from_secs(30));
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--server" => server = value()?,
            "--if-rev" => if_rev = Some(number(&arg, &value()?)?),
            "--command-id" => command_id = Some(value()?),
            "--prefix" => options.prefix = value()?,
            "--page-size" => options.page_size = Some(number(&arg, &value()?)?),
            "--worker" => workers.push(value()?),
            "--timeout" => timeout = Duration::from_secs_f64(number(&arg, &value()?)?),
            _ => words.push(arg),
        }
    }
    let action = match words.as_slice() {
        [verb, ns, key, json] if verb == "put" => Action::Put {
            ns: ns.clone(),
            key: key.clone(),
            json: json.clone(),
            if_rev,
            command_id,
            timeout,
        },
        [verb, ns, key] if verb == "get" => Action::Get {
            ns: ns.clone(),
            key: key.clone(),
        },
        [verb, ns] if verb == "range" => Action::Range {
            ns: ns.clone(),
            options,
        },
        [verb, rev] if verb == "wait" => Action::Wait {
            rev: number("REV", rev)?,
            workers,
            timeout,
        },
        _ => return Err(USAGE.into()),
    };
    Ok((server, action))
}

fn record_json(record: KeyRecord) -> Value {
    json!({
        "ns": record.namespace,
        "key": record.key,
        "value": record.json().unwrap_or(Value::Null),
        "create_rev": record.create_rev,
        "mod_rev": record.mod_rev,
        "version": record.version,
    })
}

async fn run(server: String, action: Action) -> Result<Value, Error> {
    match action {
        Action::Put {
            ns,
            key,
            json,
            if_rev,
            command_id,
            timeout,
        } => {
            let mut command = Command::new().put_json(ns.as_str(), key.as_str(), json);
            if let Some(rev) = if_rev {
                command = command.compare_mod_rev(ns, key, rev);
            }
            if let Some(id) = command_id {
                command = command.command_id(id);
            }
            // Checked before connecting: bad input fails even with no controller.
            command.to_request()?;
            let client = Client::connect(server).await?.with_timeout(timeout);
            let done = client.commit(&command).await?;
            Ok(json!({
                "rev": done.rev, "command_id": done.command_id, "replayed": done.replayed,
            }))
        }
        Action::Get { ns, key } => match Client::connect(server).await?.get(&ns, &key).await? {
            Some(record) => Ok(record_json(record)),
            None => Err(Error::NotFound {
                namespace: ns,
                key,
                rev: None,
            }),
        },
        Action::Range { ns, options } => {
            let mut pages = Client::connect(server).await?.range(&ns, options).await?;
            let (mut sizes, mut records, mut rev) = (Vec::new(), Vec::new(), 0);
            while let Some(page) = pages.next_page().await? {
                sizes.push(page.records.len());
                rev = page.rev;
                records.extend(page.records.into_iter().map(record_json));
            }
            Ok(json!({"rev": rev, "page_sizes": sizes, "records": records}))
        }
        Action::Wait {
            rev,
            workers,
            timeout,
        } => {
            let scope = if workers.is_empty() {
                WaitFor::all()
            } else {
                WaitFor::workers(workers)
            };
            let client = Client::connect(server).await?;
            let result = client.wait_applied(rev, timeout, scope).await?;
            let head_rev = client.status().await?.head_rev;
            let pending: Vec<_> = result.pending.iter().map(|w| &w.worker_id).collect();
            Ok(json!({
                "complete": result.is_complete(), "applied": result.applied, "pending": pending,
                "head_rev": head_rev,
            }))
        }
    }
}

/// The error as JSON: its code, message and retryability, and the fields a
/// script acts on.
fn describe(error: &Error) -> Value {
    let mut out = json!({
        "error": error.code(), "message": error.to_string(), "retryable": error.is_retryable(),
    });
    let fields = match error {
        Error::Conflict { failed } => json!({"failed": failed.iter().map(|f| json!({
            "namespace": f.namespace, "key": f.key, "expected": f.expected,
            "actual_mod_rev": f.actual_mod_rev,
        })).collect::<Vec<_>>()}),
        Error::InvalidValue {
            namespace,
            key,
            path,
            reason,
        } => json!({"namespace": namespace, "key": key, "path": path, "reason": reason}),
        Error::NotFound { namespace, key, .. } => json!({"namespace": namespace, "key": key}),
        _ => json!({"unknown_outcome": error.unknown_outcome()}),
    };
    if let (Some(out), Value::Object(fields)) = (out.as_object_mut(), fields) {
        out.extend(fields);
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let (server, action) = match parse(std::env::args().skip(1).collect()) {
        Ok(parsed) => parsed,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(server, action).await {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}", describe(&error));
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}
