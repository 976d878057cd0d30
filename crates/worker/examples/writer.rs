//! A small writer on the Rust client: put a JSON value, read a key back.
//!
//! ```text
//! writer [--server HOST:PORT] put NS KEY JSON [--if-rev N] [--command-id ID]
//! writer [--server HOST:PORT] get NS KEY
//! ```
//!
//! The server defaults to `$STATESYNC_SERVER`, then `127.0.0.1:7700`. A
//! success prints one JSON object on stdout. A failure prints the error as a
//! JSON object on stderr (`error` is its code, then its fields) and exits with
//! the code's exit status from `docs/errors.md` (3 for a conflict, 4 for
//! invalid input, 5 when the controller is unreachable...); 2 is a usage error.

use std::process::ExitCode;

use serde_json::{Value, json};
use statesync_worker::client::{Client, Command, Error};

const USAGE: &str = "usage: writer [--server HOST:PORT] put NS KEY JSON [--if-rev N] [--command-id ID]\n       \
                     writer [--server HOST:PORT] get NS KEY";

/// What to do, from the command line.
enum Action {
    Put {
        ns: String,
        key: String,
        json: String,
        if_rev: Option<i64>,
        command_id: Option<String>,
    },
    Get {
        ns: String,
        key: String,
    },
}

fn parse(args: Vec<String>) -> Result<(String, Action), String> {
    let mut server = std::env::var("STATESYNC_SERVER").unwrap_or_else(|_| "127.0.0.1:7700".into());
    let (mut if_rev, mut command_id) = (None, None);
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--server" => server = value("--server")?,
            "--if-rev" => {
                let text = value("--if-rev")?;
                let rev = text
                    .parse()
                    .map_err(|_| format!("--if-rev {text:?} is not a revision"))?;
                if_rev = Some(rev);
            }
            "--command-id" => command_id = Some(value("--command-id")?),
            _ => words.push(arg),
        }
    }
    let action = match <[String; 3]>::try_from(words) {
        Ok([verb, ns, key]) if verb == "get" => Action::Get { ns, key },
        Err(words) => match <[String; 4]>::try_from(words) {
            Ok([verb, ns, key, json]) if verb == "put" => Action::Put {
                ns,
                key,
                json,
                if_rev,
                command_id,
            },
            _ => return Err(USAGE.into()),
        },
        _ => return Err(USAGE.into()),
    };
    Ok((server, action))
}

async fn run(server: String, action: Action) -> Result<Value, Error> {
    match action {
        Action::Put {
            ns,
            key,
            json,
            if_rev,
            command_id,
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
            let done = Client::connect(server).await?.commit(&command).await?;
            Ok(json!({
                "rev": done.rev, "command_id": done.command_id, "replayed": done.replayed,
            }))
        }
        Action::Get { ns, key } => match Client::connect(server).await?.get(&ns, &key).await? {
            Some(record) => Ok(json!({
                "ns": record.namespace,
                "key": record.key,
                "value": record.json().unwrap_or(Value::Null),
                "create_rev": record.create_rev,
                "mod_rev": record.mod_rev,
                "version": record.version,
            })),
            None => Err(Error::NotFound {
                namespace: ns,
                key,
                rev: None,
            }),
        },
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
