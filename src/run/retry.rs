//! Bounded patience with the engine, for the backup and the restore: how long a phase is waited
//! for, and the run's side of [`wait_until`](super::engine::wait::wait_until) (its pace from
//! the run's `poll_interval`, its stop flag, its errors as [`RunError`]s). The retries of the
//! calls that end something (finalize, cancel) are the engine operations' own
//! ([`super::engine::ops`]).

use std::time::Duration;

use super::engine::wait::{Patience, WaitError};
use super::job::{Options, RunError};

/// How long an engine phase that normally takes seconds (a transfer starting or finishing, a
/// backup becoming ready or finalizing, a new disk becoming ok) is waited for.
pub(crate) const PHASE_WAIT: Duration = Duration::from_secs(600);

/// How long the end of a cancelled transfer or a removed VM is waited for while undoing.
pub(crate) const CLEANUP_WAIT: Duration = Duration::from_secs(120);

/// A wait of at most `limit` at the run's pace, ended by a stop signal.
pub(crate) fn stoppable(options: &Options, limit: Duration) -> Patience<'_> {
    unstoppable(options, limit).stopped_by(&options.stop)
}

/// A wait of at most `limit` at the run's pace that a stop signal does not end: finalizing and
/// undoing must finish.
pub(crate) fn unstoppable(options: &Options, limit: Duration) -> Patience<'static> {
    Patience::new(limit, options.poll_interval)
}

impl From<WaitError<RunError>> for RunError {
    fn from(error: WaitError<RunError>) -> Self {
        match error {
            WaitError::TimedOut { .. } => RunError::Failed(error.to_string()),
            WaitError::Stopped { .. } => RunError::Interrupted,
            WaitError::Poll(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::engine::wait::{Seen, wait_until};

    #[tokio::test]
    async fn a_run_wait_times_out_as_failed_and_a_stop_interrupts_unless_unstoppable() {
        let options = Options {
            poll_interval: Duration::from_millis(1),
            ..Options::default()
        };
        let waiting = async || Ok::<Seen<()>, RunError>(Seen::Waiting("phase finalizing".into()));
        let timed_out = wait_until("backup b1", unstoppable(&options, Duration::ZERO), waiting);
        let error = RunError::from(timed_out.await.unwrap_err());
        assert_eq!(
            error.to_string(),
            "gave up after 0 s waiting for backup b1; last seen: phase finalizing"
        );
        options
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let long = Duration::from_secs(3600);
        let stopped = wait_until("x", stoppable(&options, long), waiting).await;
        assert!(matches!(
            RunError::from(stopped.unwrap_err()),
            RunError::Interrupted
        ));
        let mut polls = 0;
        let undoing = wait_until("x", unstoppable(&options, long), async || {
            polls += 1;
            Ok::<_, RunError>(if polls < 2 {
                Seen::Waiting("up".into())
            } else {
                Seen::Done(())
            })
        });
        assert!(undoing.await.is_ok());
    }
}
