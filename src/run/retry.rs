//! Bounded patience with the engine, for the backup and the restore.
//!
//! - [`action`]: the calls that end something on the engine (a backup's or a transfer's
//!   finalize, a transfer's cancel) are retried on a 5xx or a transport error with a bounded
//!   backoff (about 25 s in all): one lost answer must not throw away a backup that was read
//!   completely, nor leave a disk locked. A retry that the engine refuses because the first
//!   call did get through (409, "already finalizing") is left to the caller's poll, which then
//!   sees the phase move on.
//! - [`Wait`]: every poll of an engine phase has a limit, and its timeout names what was waited
//!   for and the last thing seen (a phase, or the last error).

use std::fmt::Display;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

use super::engine::{EngineClient, EngineError};
use super::job::{Options, Pacer, RunError};

/// How long an engine phase that normally takes seconds (a transfer starting or finishing, a
/// backup becoming ready or finalizing, a new disk becoming ok) is waited for.
pub(crate) const PHASE_WAIT: Duration = Duration::from_secs(600);

/// How long the end of a cancelled transfer or a removed VM is waited for while undoing.
pub(crate) const CLEANUP_WAIT: Duration = Duration::from_secs(120);

/// Whether a failed call may succeed when repeated: no answer, or a server error.
pub(crate) fn is_transient(error: &EngineError) -> bool {
    matches!(error, EngineError::Transport { .. })
        || error.status().is_some_and(|s| s.is_server_error())
}

/// The backoff of [`action`]: 0.5 s doubling up to 8 s, six retries (about 25 s in all).
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(6)
        .with_jitter()
}

/// An action (`POST path` with `{}`: finalize, cancel) that is retried while it fails with a
/// 5xx or without an answer.
///
/// # Errors
/// The engine refused it (not a 5xx), or the last retry failed too.
pub(crate) async fn action(client: &EngineClient, path: &str) -> Result<(), EngineError> {
    (|| client.action(path))
        .retry(backoff())
        .when(is_transient)
        .notify(|e, after| tracing::warn!("{e}; trying again in {:.1} s", after.as_secs_f64()))
        .await
}

/// A bounded poll: paced as [`Pacer`] does, ended by a stop signal unless [`Wait::unstoppable`],
/// and given up after its limit with a message that names what was waited for and the last
/// thing seen.
pub(crate) struct Wait<'a> {
    what: String,
    limit: Duration,
    deadline: Instant,
    pacer: Pacer,
    options: &'a Options,
    stoppable: bool,
}

impl<'a> Wait<'a> {
    /// A wait for `what` (`"transfer X to start"`) of at most `limit`.
    pub(crate) fn new(options: &'a Options, what: impl Into<String>, limit: Duration) -> Self {
        Self {
            what: what.into(),
            limit,
            deadline: Instant::now() + limit,
            pacer: Pacer::new(options),
            options,
            stoppable: true,
        }
    }

    /// Not ended by a stop signal: finalizing and undoing must finish.
    pub(crate) fn unstoppable(mut self) -> Self {
        self.stoppable = false;
        self
    }

    /// Waits before the next poll, `last` being what the last poll saw.
    ///
    /// # Errors
    /// The limit has passed ([`RunError::Failed`] naming what and `last`), or the run is being
    /// stopped.
    pub(crate) async fn next(&mut self, last: &dyn Display) -> Result<(), RunError> {
        if Instant::now() >= self.deadline {
            return Err(RunError::Failed(format!(
                "gave up after {} s waiting for {}; last seen: {last}",
                self.limit.as_secs(),
                self.what
            )));
        }
        if self.stoppable {
            self.pacer.wait(self.options).await
        } else {
            self.pacer.pause().await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_past_its_limit_names_what_it_waited_for_and_the_last_thing_seen() {
        let options = Options::default();
        let mut wait = Wait::new(&options, "backup b1 to finish finalizing", Duration::ZERO);
        let error = wait
            .next(&"phase finalizing")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "gave up after 0 s waiting for backup b1 to finish finalizing; last seen: phase \
             finalizing"
        );
    }

    #[tokio::test]
    async fn a_wait_within_its_limit_paces_and_a_stop_ends_it_unless_unstoppable() {
        let options = Options {
            poll_interval: Duration::from_millis(1),
            ..Options::default()
        };
        let mut wait = Wait::new(&options, "x", Duration::from_secs(3600));
        assert!(wait.next(&"starting").await.is_ok());
        options
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            wait.next(&"starting").await,
            Err(RunError::Interrupted)
        ));
        let mut undoing = Wait::new(&options, "x", Duration::from_secs(3600)).unstoppable();
        assert!(undoing.next(&"starting").await.is_ok());
    }

    #[test]
    fn server_errors_and_no_answer_are_worth_a_retry_refusals_are_not() {
        let fault = |status: u16| EngineError::Fault {
            method: reqwest::Method::POST,
            path: "/x/finalize".into(),
            status: reqwest::StatusCode::from_u16(status).expect("status"),
            reason: String::new(),
            detail: String::new(),
        };
        assert!(is_transient(&fault(500)));
        assert!(is_transient(&fault(503)));
        assert!(!is_transient(&fault(409)));
        assert!(!is_transient(&fault(404)));
        assert!(!is_transient(&EngineError::Timeout("x".into())));
    }
}
