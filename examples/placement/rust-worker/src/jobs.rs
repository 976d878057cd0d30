//! What the worker acts on: the jobs placed on its node, one file each.
//!
//! The worker's handler runs before a revision is stored, so after a crash a
//! revision may be offered again: every action here is idempotent (writing
//! the same placement, removing a file already gone).

use std::fs;
use std::io;
use std::path::PathBuf;

use serde_json::Value;
use statesync_worker::{ChangeEvent, Op, Reject};

/// The jobs running on one node: the files in `dir`.
pub struct Jobs {
    dir: PathBuf,
    node: String,
}

impl Jobs {
    /// The jobs of `node`, kept in `dir` (created if missing).
    pub fn open(dir: PathBuf, node: &str) -> io::Result<Jobs> {
        fs::create_dir_all(&dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        Ok(Jobs {
            dir,
            node: node.to_owned(),
        })
    }

    /// Accepts a change and acts on it, or refuses it (the worker NACKs it
    /// and keeps the last good value: the job stays where it runs).
    pub fn on_change(&mut self, change: &ChangeEvent<'_>) -> Result<(), Reject> {
        match self.act(change) {
            Ok(()) => Ok(()),
            Err(Refusal(reason)) => {
                println!(
                    "refuse {}/{} at rev {}: {reason}",
                    change.ns, change.key, change.rev
                );
                Err(Reject::new(reason))
            }
        }
    }

    fn act(&mut self, change: &ChangeEvent<'_>) -> Result<(), Refusal> {
        let job = job_name(change.key)?;
        let file = self.dir.join(format!("{job}.json"));
        let placement = match change.op {
            Op::Delete => None,
            Op::Put => Some(placement(change.value.unwrap_or_default())?),
        };
        let running = fs::read(&file).ok();
        match placement {
            Some((node, image, value)) if node == self.node => {
                if running.as_deref() != Some(value) {
                    write_atomically(&file, value)?;
                    println!("start {job} ({image}) at rev {}", change.rev);
                }
            }
            elsewhere => {
                if running.is_some() {
                    fs::remove_file(&file).map_err(|e| io_refusal(&file, e))?;
                    match elsewhere {
                        Some((node, ..)) => {
                            println!("stop {job} at rev {}: moved to {node}", change.rev)
                        }
                        None => println!("stop {job} at rev {}: removed", change.rev),
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why a change is refused.
struct Refusal(String);

/// A job's key doubles as its file name: letters, digits, `.`, `_`, `-`.
fn job_name(key: &str) -> Result<&str, Refusal> {
    let ok = !key.starts_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(key)
    } else {
        Err(Refusal(format!("{key:?} is not a job name")))
    }
}

/// The node and image of a placement, with its canonical bytes.
fn placement(value: &[u8]) -> Result<(String, String, &[u8]), Refusal> {
    let parsed: Value =
        serde_json::from_slice(value).map_err(|e| Refusal(format!("the value is not JSON: {e}")))?;
    let field = |name: &str| match parsed.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Refusal(format!(
            "a placement needs a non-empty string {name:?}, got {}",
            String::from_utf8_lossy(value)
        ))),
    };
    Ok((field("node")?, field("image")?, value))
}

fn write_atomically(file: &std::path::Path, value: &[u8]) -> Result<(), Refusal> {
    let staged = file.with_extension("json.tmp");
    fs::write(&staged, value).map_err(|e| io_refusal(&staged, e))?;
    fs::rename(&staged, file).map_err(|e| io_refusal(file, e))
}

/// A job this node cannot start or stop is refused: NACKed with the reason,
/// so `statesync status` shows it, rather than ACKed and not acted on.
fn io_refusal(path: &std::path::Path, err: io::Error) -> Refusal {
    Refusal(format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use statesync_worker::Origin;

    fn put<'a>(rev: i64, key: &'a str, value: &'a str) -> ChangeEvent<'a> {
        ChangeEvent {
            rev,
            ns: "jobs",
            key,
            op: Op::Put,
            value: Some(value.as_bytes()),
            command_id: "",
            trace: "",
            create_rev: rev,
            version: 1,
            schema_version: 0,
            origin: Origin::Command,
        }
    }

    fn running(jobs: &Jobs) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&jobs.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn runs_exactly_the_jobs_placed_on_its_node() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = Jobs::open(dir.path().join("running"), "node-a").unwrap();
        let on_a = r#"{"image":"nginx:1.27","node":"node-a"}"#;
        jobs.on_change(&put(1, "job-1", on_a)).unwrap();
        jobs.on_change(&put(1, "job-2", r#"{"image":"x","node":"node-b"}"#))
            .unwrap();
        jobs.on_change(&put(1, "job-3", on_a)).unwrap();
        assert_eq!(running(&jobs), ["job-1.json", "job-3.json"]);
        assert_eq!(fs::read_to_string(jobs.dir.join("job-1.json")).unwrap(), on_a);
        // Offered again after a crash: nothing changes.
        jobs.on_change(&put(1, "job-1", on_a)).unwrap();
        // Moved away, and removed.
        jobs.on_change(&put(2, "job-1", r#"{"image":"nginx:1.27","node":"node-b"}"#))
            .unwrap();
        let mut delete = put(3, "job-3", "");
        (delete.op, delete.value) = (Op::Delete, None);
        jobs.on_change(&delete).unwrap();
        jobs.on_change(&delete).unwrap();
        assert!(running(&jobs).is_empty());
    }

    #[test]
    fn a_malformed_placement_is_refused_and_the_job_keeps_running() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = Jobs::open(dir.path().join("running"), "node-a").unwrap();
        jobs.on_change(&put(1, "job-1", r#"{"image":"redis:7.4","node":"node-a"}"#))
            .unwrap();
        for bad in [
            r#"{"node":"node-b"}"#,
            r#"{"image":"x","node":""}"#,
            "[1]",
            "null",
        ] {
            let refused = jobs.on_change(&put(2, "job-1", bad)).unwrap_err();
            assert!(refused.reason.contains("placement needs"), "{refused}");
        }
        let refused = jobs
            .on_change(&put(2, "../etc", r#"{"image":"x","node":"node-a"}"#))
            .unwrap_err();
        assert!(refused.reason.contains("not a job name"), "{refused}");
        assert_eq!(running(&jobs), ["job-1.json"]);
    }
}
