//! A worker process killed (SIGKILL) while it applies revisions: the replica
//! opens cleanly and holds exactly the revisions up to its applied revision.
//!
//! The killed process is this test binary again, running the ignored
//! `child_applies_until_killed` with the state directory in its environment.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statesync_worker::{Changes, Entry, Replica, read_offline};

const CHILD_DIR: &str = "STATESYNC_REPLICA_CRASH_DIR";

/// Revision r puts `k<r>` and `counter` = r, and deletes `k<r-10>`.
fn revision(rev: i64) -> Changes {
    let put = |key: String| {
        (
            "ns".to_string(),
            key,
            Entry::new(rev.to_string().into_bytes(), rev, rev, 1),
        )
    };
    Changes {
        puts: vec![put(format!("k{rev}")), put("counter".into())],
        deletes: vec![("ns".into(), format!("k{}", rev - 10))],
        rejected: Vec::new(),
    }
}

/// Revisions the child applies at most, should its parent fail to kill it.
const CHILD_LIMIT: i64 = 100_000;

/// Kills the child however the test ends: a failed assertion must not leave
/// it writing.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "the child of killed_while_applying_resumes_exactly"]
fn child_applies_until_killed() {
    let dir = std::env::var_os(CHILD_DIR).expect("run by killed_while_applying_resumes_exactly");
    let mut replica = Replica::open(&dir, "child").expect("open");
    for rev in replica.applied_rev() + 1..CHILD_LIMIT {
        replica.apply(rev, revision(rev)).expect("apply");
    }
}

#[test]
fn killed_while_applying_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = Killed(
            Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", "child_applies_until_killed"])
                .env(CHILD_DIR, dir.path())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let target = 300 * (round + 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        // The child has no way to signal progress but its file: poll it.
        while read_offline(dir.path()).map_or(true, |d| d.applied_rev < target) {
            assert!(Instant::now() < deadline, "the child made no progress");
            assert!(child.0.try_wait().unwrap().is_none(), "the child exited");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(child); // SIGKILL: no destructor, no rollback, mid-write

        let replica = Replica::open(dir.path(), "parent").expect("opens, digests agree");
        let rev = replica.applied_rev();
        assert!(rev >= target);
        let value = |key: &str| replica.get("ns", key).map(|e| e.value.clone());
        assert_eq!(value("counter"), Some(rev.to_string().into_bytes()));
        for r in rev - 9..=rev {
            assert_eq!(value(&format!("k{r}")), Some(r.to_string().into_bytes()), "k{r}");
        }
        assert_eq!(value(&format!("k{}", rev - 10)), None);
        assert_eq!(value(&format!("k{}", rev + 1)), None);
        assert_eq!(replica.digest("ns").unwrap().count(), 11);
    }
}
