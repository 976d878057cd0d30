//! Counters of the native commit path, read by the controller's `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Commits, refusals by error class and commit latency, as a Prometheus
/// histogram with the bounds the controller chose.
#[derive(Debug)]
pub struct CommitCounters {
    bounds: Vec<f64>,
    state: Mutex<CommitStats>,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitStats {
    /// Commands committed (replays included, as the Python server counted them).
    pub commits: u64,
    /// Commands refused, by error class (`statesync.v1.Error.code`).
    pub errors: BTreeMap<String, u64>,
    /// Per bucket bound (the same order as the bounds), the commits at or
    /// under it and above the previous bound; the last slot is +Inf.
    pub buckets: Vec<u64>,
    /// The total commit latency in seconds.
    pub seconds: f64,
}

impl CommitCounters {
    /// Counters whose latency histogram has these upper bounds (seconds, ascending).
    pub fn new(bounds: Vec<f64>) -> Self {
        let buckets = vec![0; bounds.len() + 1];
        CommitCounters {
            bounds,
            state: Mutex::new(CommitStats {
                buckets,
                ..CommitStats::default()
            }),
        }
    }

    /// The histogram's upper bounds.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CommitStats> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn committed(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let slot = self.bounds.partition_point(|bound| *bound < seconds);
        let mut state = self.lock();
        state.commits += 1;
        state.seconds += seconds;
        state.buckets[slot] += 1;
    }

    pub(crate) fn refused(&self, code: &str) {
        *self.lock().errors.entry(code.to_owned()).or_default() += 1;
    }

    /// The counters now.
    pub fn snapshot(&self) -> CommitStats {
        self.lock().clone()
    }
}
