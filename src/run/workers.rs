//! Parallel connections sharing a queue of byte ranges, as a backup's download and a restore's
//! upload run them: each worker takes the next range until none is left or the run is being
//! stopped, and the first failure stops the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::backup::RunError;

/// Ranges `(offset, length)` handed out in order.
#[derive(Debug)]
pub(crate) struct Ranges {
    left: Mutex<Vec<(u64, u64)>>,
    stop: Arc<AtomicBool>,
}

impl Ranges {
    /// The queue of `ranges`; `stop` set (a signal) interrupts the takers.
    pub(crate) fn new(mut ranges: Vec<(u64, u64)>, stop: Arc<AtomicBool>) -> Arc<Self> {
        ranges.reverse();
        Arc::new(Self {
            left: Mutex::new(ranges),
            stop,
        })
    }

    /// The next range; `None` when all are taken.
    ///
    /// # Errors
    /// [`RunError::Interrupted`] once the run is being stopped.
    pub(crate) fn next(&self) -> Result<Option<(u64, u64)>, RunError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        Ok(self.left.lock().expect("ranges lock").pop())
    }
}

/// Waits for every worker; their results, or the first failure (the others are then aborted).
///
/// # Errors
/// The first worker's failure, or a worker that panicked.
pub(crate) async fn join_all<T: 'static>(
    mut workers: tokio::task::JoinSet<Result<T, RunError>>,
) -> Result<Vec<T>, RunError> {
    let mut done = Vec::new();
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined.map_err(|e| RunError::Config(e.to_string())) {
            Ok(Ok(result)) => done.push(result),
            Ok(Err(e)) | Err(e) => {
                if first_error.is_none() {
                    workers.abort_all();
                    first_error = Some(e);
                }
            }
        }
    }
    first_error.map_or(Ok(done), Err)
}
