//! Parallel connections sharing a queue of byte ranges, as a backup's download and a restore's
//! upload run them ([`spread`] serves both): each worker takes the next range until none is
//! left or the run is being stopped, and the first failure stops the others.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::job::{Options, RunError, panicked};

/// Runs `options.workers` workers (at least one) over one queue of `ranges`: each is the future
/// `worker(queue)`, which takes ranges until none is left. Their results.
///
/// # Errors
/// The first worker's failure (the others are then aborted), or a worker that panicked.
pub(crate) async fn spread<T, W, F>(
    ranges: Vec<(u64, u64)>,
    options: &Options,
    worker: W,
) -> Result<Vec<T>, RunError>
where
    T: Send + 'static,
    W: Fn(Arc<Ranges>) -> F,
    F: Future<Output = Result<T, RunError>> + Send + 'static,
{
    let queue = Ranges::new(ranges, options.stop.clone());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.workers.max(1) {
        workers.spawn(worker(queue.clone()));
    }
    join_all(workers).await
}

/// A progress bar for one disk (hidden when not drawing).
pub(crate) fn progress_bar(draw: bool, total: u64, disk: &str) -> indicatif::ProgressBar {
    if !draw {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(disk.to_owned());
    bar
}

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
async fn join_all<T: 'static>(
    mut workers: tokio::task::JoinSet<Result<T, RunError>>,
) -> Result<Vec<T>, RunError> {
    let mut done = Vec::new();
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        match joined.map_err(|e| panicked(&e)) {
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
